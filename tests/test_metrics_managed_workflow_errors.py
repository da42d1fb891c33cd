"""conveyor_workflow_errors: the one per-workflow series, only for the organizations the
METRICS_MANAGED_ORGS setting lists, for both error statuses, zero included."""

from datetime import timedelta

import pytest
from django.utils import timezone

from observability.scrape import matching, value
from tests.factories import make_execution, make_org, make_workflow

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queue_reads(settings):
    settings.METRICS_QUEUES = []


def failed(workflow, status, error_type, *, hours_ago=0):
    finished_at = timezone.now() - timedelta(hours=hours_ago)
    return make_execution(workflow, status=status, error_type=error_type, finished_at=finished_at)


def test_no_per_workflow_series_without_managed_organizations(client, settings):
    settings.METRICS_MANAGED_ORGS = []
    failed(make_workflow(), "system_error", "system")

    assert matching(client.get("/metrics").content.decode(), "conveyor_workflow_errors") == []


def test_managed_organizations_get_errors_per_workflow_and_others_do_not(client, settings):
    managed, other = make_org("acme"), make_org("someone-else")
    settings.METRICS_MANAGED_ORGS = ["acme"]
    billing = make_workflow(managed, name="billing")
    quiet = make_workflow(managed, name="quiet")
    failed(billing, "system_error", "system")
    failed(billing, "system_error", "system")
    failed(billing, "error", "user")
    failed(billing, "error", "user", hours_ago=3)  # before the window
    make_execution(billing, status="success", finished_at=timezone.now())
    failed(make_workflow(other, name="theirs"), "system_error", "system")

    text = client.get("/metrics").content.decode()

    assert value(text, "conveyor_workflow_errors", organization="acme", workflow="billing", status="system_error") == 2
    assert value(text, "conveyor_workflow_errors", organization="acme", workflow="billing", status="error") == 1
    assert value(text, "conveyor_workflow_errors", workflow_id=str(quiet.pk), status="system_error") == 0
    assert value(text, "conveyor_workflow_errors", workflow_id=str(quiet.pk), status="error") == 0
    assert {s.labels["organization"] for s in matching(text, "conveyor_workflow_errors")} == {"acme"}
    assert len(matching(text, "conveyor_workflow_errors")) == 4
