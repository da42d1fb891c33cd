"""Every attempt of a retried step is shown: in the admin run detail (with the internal
text), the API run detail and the runs pages (without a system error's internal text)."""

import pytest
from django.test import Client
from django.utils import timezone

from executions.models import Step
from tests.factories import make_execution, make_workflow
from tests.ui import api_client, member, staff_client

pytestmark = [pytest.mark.django_db]

INTERNAL = "OperationalError: connection to server at db-7.internal failed"
ATTEMPTS = [
    {"attempt": 1, "started_at": "2026-12-01T12:00:00+00:00", "finished_at": "2026-12-01T12:00:01+00:00",
     "outcome": "error", "error_type": "external", "error_category": "external_service", "error_code": "",
     "error_message": "GET http://api.test/x answered 503", "retry_in_s": 1.0},
    {"attempt": 2, "started_at": "2026-12-01T12:00:02+00:00", "finished_at": "2026-12-01T12:00:03+00:00",
     "outcome": "error", "error_type": "system", "error_category": "database", "error_code": "C-0002",
     "error_message": INTERNAL, "retry_in_s": 2.0},
    {"attempt": 3, "started_at": "2026-12-01T12:00:05+00:00", "finished_at": "2026-12-01T12:00:06+00:00",
     "outcome": "success"},
]  # fmt: skip


def retried_run(org):
    run = make_execution(make_workflow(org), status="success")
    Step.objects.create(
        execution=run, step_id="call", action="http_request", position=0, status="success",
        finished_at=timezone.now(), attempts=ATTEMPTS,
    )  # fmt: skip
    return run


def test_the_api_run_detail_lists_each_attempt_without_internal_text():
    user = member()
    run = retried_run(user.membership.organization)
    step = api_client(user).get(f"/api/runs/{run.pk}/").json()["steps"][0]
    assert [a["outcome"] for a in step["attempts"]] == ["error", "error", "success"]
    assert step["attempts"][0]["error_message"] == "GET http://api.test/x answered 503"
    assert step["attempts"][1]["error_code"] == "C-0002" and "error_message" not in step["attempts"][1]
    assert step["reused"] is False


def test_the_runs_page_shows_the_attempts_and_the_admin_adds_the_internal_text():
    user = member()
    run = retried_run(user.membership.organization)
    pages = Client()
    pages.force_login(user)
    page = pages.get(f"/runs/{run.pk}/").content.decode()
    assert "3 attempts" in page and "#1 error (external): GET http://api.test/x answered 503" in page
    assert "#2 error (system, C-0002)" in page and "db-7.internal" not in page

    client, _ = staff_client("olga")
    admin_page = client.get(f"/admin/executions/execution/{run.pk}/change/").content.decode()
    assert "db-7.internal" in admin_page and "retried after 2.0 s" in admin_page
