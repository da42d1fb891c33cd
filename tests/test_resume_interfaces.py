"""Resume in every interface: the API's resume action (refused naming the step that may
repeat until `confirm_repeat`), the admin's Resume button with its confirmation page and
the bulk resume by code and time window, and the runs pages' button. Each goes through
executions.resume; the runs these tests resume are written directly (the engine's part
is tests/test_resume_service.py)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY

from executions.models import Execution, Step, Transition
from tests.factories import make_execution, make_workflow
from tests.ui import api_client, member, staff_client

pytestmark = [pytest.mark.django_db]

DEFINITION = {
    "steps": [
        {"id": "fetch", "action": "http_request", "config": {"url": "https://api.example.com/a"}},
        {"id": "pay", "action": "http_request", "config": {"url": "https://api.example.com/pay", "method": "POST"}},
    ]
}


def interrupted_in(step_id: str, workflow=None, **fields) -> Execution:
    """A run lost in `step_id` (P-0003): the steps before it succeeded."""
    workflow = workflow or make_workflow(definition=DEFINITION)
    run = make_execution(
        workflow, status="system_error", error_type="system", error_category="infrastructure",
        error_code="P-0003", finished_at=timezone.now(), **fields,
    )  # fmt: skip
    ids = [s["id"] for s in DEFINITION["steps"]]
    for position, sid in enumerate(ids[: ids.index(step_id) + 1]):
        done = sid != step_id
        Step.objects.create(
            execution=run, step_id=sid, action="http_request", position=position,
            status="success" if done else "running", output={"status": 200} if done else None,
        )  # fmt: skip
    return run


# --- API --------------------------------------------------------------------------------------
def resumes(origin: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("conveyor_resumes_total", {"origin": origin, "outcome": outcome}) or 0.0


def test_the_api_refuses_to_repeat_a_non_idempotent_step_until_confirmed():
    asked, resumed = resumes("api", "needs_confirmation"), resumes("api", "resumed")
    user = member()
    run = interrupted_in("pay", make_workflow(user.membership.organization, definition=DEFINITION))
    client = api_client(user)

    refused = client.post(f"/api/runs/{run.pk}/resume/", {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["step_id"] == "pay" and refused.json()["confirm_with"] == {"confirm_repeat": True}
    assert not Execution.objects.filter(rerun_of=run).exists()

    accepted = client.post(f"/api/runs/{run.pk}/resume/", {"confirm_repeat": True}, format="json")
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["rerun_of"] == str(run.pk) and body["resume_step"] == "pay"
    detail = client.get(f"/api/runs/{body['run_id']}/").json()
    assert detail["resumed_from"] == f"resumed from {run.pk} at step pay"
    assert (resumes("api", "needs_confirmation"), resumes("api", "resumed")) == (asked + 1, resumed + 1)


def test_the_api_resumes_an_idempotent_step_at_once_and_refuses_a_run_that_did_not_fail():
    user = member()
    org = user.membership.organization
    run = interrupted_in("fetch", make_workflow(org, definition=DEFINITION))
    client = api_client(user)
    assert client.post(f"/api/runs/{run.pk}/resume/", format="json").status_code == 202
    done = make_execution(make_workflow(org, definition=DEFINITION), status="success")
    answer = client.post(f"/api/runs/{done.pk}/resume/", format="json")
    assert answer.status_code == 409 and "only a failed run" in answer.json()["detail"]


def test_the_api_refuses_a_resume_after_the_steps_before_it_changed():
    user = member()
    workflow = make_workflow(user.membership.organization, definition=DEFINITION)
    run = interrupted_in("pay", workflow)
    changed = {
        "steps": [dict(DEFINITION["steps"][0], config={"url": "https://api.example.com/b"}), DEFINITION["steps"][1]]
    }
    workflow.definition = changed
    workflow.save()
    answer = api_client(user).post(f"/api/runs/{run.pk}/resume/", {"confirm_repeat": True}, format="json")
    assert answer.status_code == 409 and "step 'fetch' changed" in answer.json()["detail"]


# --- admin ------------------------------------------------------------------------------------
def test_the_admin_asks_for_a_confirmation_naming_the_step_then_resumes():
    operator, _ = staff_client("olga")
    run = interrupted_in("pay")
    page = operator.get(f"/admin/executions/execution/{run.pk}/change/").content.decode()
    assert 'id="resume-button"' in page

    confirm = operator.post(f"/admin/executions/execution/{run.pk}/resume/")
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert '<code id="resume-step">pay</code>' in html and "may run again" in html
    assert not Execution.objects.filter(rerun_of=run).exists()

    done = operator.post(f"/admin/executions/execution/{run.pk}/resume/", {"confirm_repeat": "yes"})
    assert done.status_code == 302
    child = Execution.objects.get(rerun_of=run)
    assert (child.trigger_type, child.resume_step) == ("resume", "pay")
    assert Transition.objects.get(execution=child, move="create").reason == f"resumed from {run.pk} at step pay"
    detail = operator.get(f"/admin/executions/execution/{child.pk}/change/").content.decode()
    assert f"resumed from {run.pk} at step pay" in detail


def test_the_admin_bulk_resume_resumes_what_is_safe_and_lists_what_needs_a_confirmation():
    operator, _ = staff_client("olga")
    now = timezone.now()
    safe = [interrupted_in("fetch", created_at=now - timedelta(minutes=m)) for m in (5, 10)]
    risky = interrupted_in("pay", created_at=now - timedelta(minutes=7))
    window = {"code": "P-0003", "since": (now - timedelta(hours=1)).isoformat(), "until": now.isoformat()}

    response = operator.post("/admin/executions/execution/bulk-rerun/", {**window, "confirm": "yes", "mode": "resume"})
    assert response.status_code == 302
    children = Execution.objects.filter(trigger_type="resume")
    assert {c.rerun_of_id for c in children} == {r.pk for r in safe}
    texts = [str(m) for m in response.wsgi_request._messages]
    assert any(str(risky.pk) in t and "'pay'" in t for t in texts)
    assert "2 run(s) resumed." in texts


# --- runs pages -------------------------------------------------------------------------------
def test_the_runs_page_resume_button_confirms_a_step_that_may_repeat():
    user = member()
    run = interrupted_in("pay", make_workflow(user.membership.organization, definition=DEFINITION))
    pages = Client()
    pages.force_login(user)
    assert 'id="resume-button"' in pages.get(f"/runs/{run.pk}/").content.decode()

    first = pages.post(f"/runs/{run.pk}/resume/")
    assert first.status_code == 302 and "confirm_resume=pay" in first["Location"]
    assert 'id="resume-confirm"' in pages.get(first["Location"]).content.decode()
    assert not Execution.objects.filter(rerun_of=run).exists()

    second = pages.post(f"/runs/{run.pk}/resume/", {"confirm_repeat": "yes"})
    child = Execution.objects.get(rerun_of=run)
    assert second.status_code == 302 and second["Location"].endswith(f"/runs/{child.pk}/")
    assert "at step <code>pay</code>" in pages.get(second["Location"]).content.decode()
