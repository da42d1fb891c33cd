"""A step's own failure, through a real worker: the user's mistake and the user's endpoint
are `error`; the platform failing inside a step is `system_error` with its code."""

import socket

import pytest

from executions.enqueue import enqueue
from executions.models import Step
from tenancy.models import OrganizationSecret
from tests.e2e import calling, wait_status
from tests.factories import make_org, make_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_bad_template_is_a_user_error(pipeline):
    pipeline.worker()
    definition = {"steps": [{"id": "t", "action": "transform", "config": {"output": "{{ input.missing }}"}}]}
    execution = enqueue(pipeline.workflow(definition), trigger_type="manual").execution
    failed = wait_status(execution.pk)
    assert (failed.status, failed.error_type, failed.error_code) == ("error", "user", "")
    assert "input.missing" in failed.customer_message
    assert Step.objects.get(execution=failed).status == "error"


def test_the_users_endpoint_refusing_connections_is_an_external_error(pipeline, settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    pipeline.worker(CONVEYOR_HTTP_ALLOWED_NETWORKS="127.0.0.1/32")
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    definition = {"steps": [{"id": "call", "action": "http_request", "config": {"method": "POST", "url": url}}]}
    execution = enqueue(pipeline.workflow(definition), trigger_type="manual").execution
    failed = wait_status(execution.pk)
    assert (failed.status, failed.error_type, failed.error_category) == ("error", "external", "external_service")


def test_the_platforms_database_failing_inside_a_step_is_a_system_error_c0002(pipeline):
    pipeline.worker()
    execution = enqueue(
        pipeline.workflow(calling("workflows.actions.examples.query_missing_table"), runtime="inline"),
        trigger_type="manual",
    ).execution
    failed = wait_status(execution.pk)
    assert (failed.status, failed.error_type, failed.error_code, failed.error_category) == (
        "system_error",
        "system",
        "C-0002",
        "database",
    )
    assert "conveyor_no_such_table" not in failed.customer_message


def test_an_undecryptable_organization_secret_is_a_system_error_c0004(pipeline):
    pipeline.worker()
    org = make_org()
    OrganizationSecret.objects.create(organization=org, name="API_KEY", ciphertext="gAAAAA-not-a-token")
    definition = {"steps": [{"id": "t", "action": "transform", "config": {"output": "{{ secrets.API_KEY }}"}}]}
    execution = enqueue(make_workflow(org, definition=definition), trigger_type="manual").execution
    failed = wait_status(execution.pk)
    assert (failed.status, failed.error_code, failed.error_category) == ("system_error", "C-0004", "auth")
    assert not Step.objects.filter(execution=failed).exists()
