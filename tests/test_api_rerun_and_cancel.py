"""POST /api/runs/<id>/rerun/ and /cancel/: through the services, in the caller's
organization only."""

import pytest
from django.core.cache import cache

from executions.models import Execution, Transition
from tests.factories import make_execution, make_workflow
from tests.ui import api_client, member

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()


def test_a_finished_run_is_re_run_as_a_new_linked_run():
    user = member()
    original = make_execution(
        make_workflow(user.membership.organization), status="system_error", error_type="system",
        error_code="P-0005", input={"x": 1},
    )  # fmt: skip

    response = api_client(user).post(f"/api/runs/{original.pk}/rerun/")

    assert response.status_code == 202, response.content
    child = Execution.objects.get(pk=response.json()["run_id"])
    assert response.json() == {"run_id": str(child.pk), "status": "pending", "rerun_of": str(original.pk)}
    assert (child.rerun_of, child.trigger_type, child.input) == (original, "rerun", {"x": 1})


def test_a_run_in_progress_cannot_be_re_run():
    user = member()
    run = make_execution(make_workflow(user.membership.organization), status="running")

    response = api_client(user).post(f"/api/runs/{run.pk}/rerun/")

    assert response.status_code == 409 and "finished" in response.json()["detail"]


def test_cancelling_a_pending_run_writes_the_transition_as_the_api():
    user = member(username="carol")
    run = make_execution(make_workflow(user.membership.organization), status="pending")

    response = api_client(user).post(f"/api/runs/{run.pk}/cancel/")

    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    last = Transition.objects.filter(execution=run).latest("at")
    assert (last.from_status, last.to_status, last.actor, last.reason) == (
        "pending",
        "cancelled",
        "api",
        "cancelled by api:carol",
    )


def test_cancelling_a_running_run_takes_it_from_its_supervisor():
    user = member()
    run = make_execution(make_workflow(user.membership.organization), status="running")

    assert api_client(user).post(f"/api/runs/{run.pk}/cancel/").status_code == 200
    run.refresh_from_db()
    assert run.status == "cancelled"  # the supervisor's next heartbeat finds it no longer its own


def test_a_finished_run_cannot_be_cancelled():
    user = member()
    run = make_execution(make_workflow(user.membership.organization), status="success")

    response = api_client(user).post(f"/api/runs/{run.pk}/cancel/")

    assert response.status_code == 409
    run.refresh_from_db()
    assert run.status == "success"


def test_another_organizations_run_can_be_neither_re_run_nor_cancelled():
    user = member()
    finished, pending = make_execution(status="success"), make_execution(status="pending")
    api = api_client(user)

    assert api.post(f"/api/runs/{finished.pk}/rerun/").status_code == 404
    assert api.post(f"/api/runs/{pending.pk}/cancel/").status_code == 404
    pending.refresh_from_db()
    assert pending.status == "pending" and not Execution.objects.filter(rerun_of=finished).exists()
