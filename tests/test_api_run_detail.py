"""GET /api/runs/<id>/: the run, its steps and its customer-facing error; never the
internal message, the host, the classifier rule, SQL or a secret."""

import pytest
from django.utils import timezone

from executions.models import Step
from tests.factories import make_execution, make_workflow
from tests.ui import api_client, member

pytestmark = [pytest.mark.django_db]

INTERNAL = 'OperationalError: connection to server at "db-7.internal" (10.0.3.7) failed; SELECT * FROM secrets'


def test_a_system_error_shows_the_catalogue_message_and_none_of_the_internal_text():
    user = member()
    run = make_execution(
        make_workflow(user.membership.organization),
        status="system_error",
        error_type="system",
        error_category="database",
        error_code="C-0002",
        error_message=INTERNAL,
        classifier_rule="database-error",
        worker="worker-3.internal/4242",
        input={"order": 1},
    )
    Step.objects.create(
        execution=run, step_id="fetch", action="http_request", position=0, status="error",
        error_type="system", error_message=INTERNAL, finished_at=timezone.now(),
    )  # fmt: skip

    response = api_client(user).get(f"/api/runs/{run.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "system_error" and body["terminal"] is True
    assert body["error"]["code"] == "C-0002" and body["error"]["type"] == "system"
    assert body["error"]["message"] == run.customer_message and "C-0002" in body["error"]["message"]
    assert body["error"]["safe_to_rerun"] is False
    assert body["steps"][0]["step_id"] == "fetch" and body["steps"][0]["error"] == run.customer_message
    text = response.content.decode()
    for leak in ("db-7.internal", "10.0.3.7", "SELECT", "worker-3", "database-error", "claim_token"):
        assert leak not in text, leak


def test_a_user_errors_real_message_is_shown_on_its_step():
    user = member()
    run = make_execution(
        make_workflow(user.membership.organization),
        status="error",
        error_type="user",
        error_category="workflow",
        error_message="steps.fetch: template references steps.nothing",
    )
    Step.objects.create(
        execution=run, step_id="fetch", action="transform", position=0, status="error",
        error_type="user", error_message="template references steps.nothing", finished_at=timezone.now(),
    )  # fmt: skip

    body = api_client(user).get(f"/api/runs/{run.pk}/").json()

    assert body["error"]["message"] == "steps.fetch: template references steps.nothing"
    assert body["steps"][0]["error"] == "template references steps.nothing"


def test_a_safe_to_rerun_system_error_says_so():
    user = member()
    run = make_execution(
        make_workflow(user.membership.organization), status="system_error", error_type="system", error_code="P-0005"
    )
    body = api_client(user).get(f"/api/runs/{run.pk}/").json()
    assert body["error"]["safe_to_rerun"] is True and "safe to re-run" in body["rerun_notice"]


def test_another_organizations_run_answers_404_like_a_missing_one():
    user = member()
    theirs = make_execution(make_workflow(), status="success")
    api = api_client(user)

    assert api.get(f"/api/runs/{theirs.pk}/").status_code == 404
    assert api.get("/api/runs/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert api.get("/api/runs/not-a-uuid/").status_code == 404
