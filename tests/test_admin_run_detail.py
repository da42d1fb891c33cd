"""The admin's run detail: input, output, steps with their status and timings, the
transition log, the matched classifier rule and the internal error message next to the
customer message; re-run and cancel buttons that go through the services."""

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.models import Execution, Step, Transition
from executions.transitions import fail
from failures.classifier import system_fault
from failures.statuses import Actor
from tests.factories import make_execution, make_workflow
from tests.ui import staff_client

pytestmark = [pytest.mark.django_db]


def change_url(run) -> str:
    return f"/admin/executions/execution/{run.pk}/change/"


@pytest.fixture
def operator():
    return staff_client("olga")[0]


def test_the_detail_shows_everything_an_operator_needs(operator):
    run = make_execution(make_workflow(name="billing"), status="running", input={"invoice": 77})
    started = timezone.now() - timedelta(seconds=3)
    Step.objects.create(
        execution=run, step_id="fetch", action="http_request", position=0, status="success",
        started_at=started, finished_at=started + timedelta(milliseconds=1500),
    )  # fmt: skip
    fail(
        run.pk,
        system_fault("P-0003", "runtime pid 4242 on worker-3.internal killed by SIGKILL", rule="runtime-killed"),
        actor=Actor.REAPER,
        expected=["running"],
    )

    html = operator.get(change_url(run)).content.decode()

    assert "&quot;invoice&quot;: 77" in html  # input
    assert "fetch" in html and "http_request" in html and "1.5 s" in html  # a step, its timing
    assert "running" in html and "system_error" in html and "reaper" in html  # the transition log
    assert "runtime-killed" in html  # the matched classifier rule
    assert "Internal error message (staff only)" in html and "worker-3.internal killed by SIGKILL" in html
    assert "Customer message" in html and "(reference P-0003)" in html
    assert 'id="rerun-button"' in html and 'id="reclassify-link"' in html and 'id="cancel-button"' not in html


def test_the_re_run_button_creates_a_linked_run_through_the_service(operator):
    run = make_execution(status="system_error", error_type="system", error_code="P-0005")

    response = operator.post(f"/admin/executions/execution/{run.pk}/rerun/")

    child = Execution.objects.get(rerun_of=run)
    assert response.status_code == 302 and response["Location"] == change_url(child)
    assert child.trigger_type == "rerun" and child.status == "pending"


def test_the_cancel_button_cancels_as_the_operator_and_is_logged(operator):
    run = make_execution(status="running")
    assert 'id="cancel-button"' in operator.get(change_url(run)).content.decode()

    operator.post(f"/admin/executions/execution/{run.pk}/cancel/")

    run.refresh_from_db()
    last = Transition.objects.filter(execution=run).latest("at")
    assert run.status == "cancelled"
    assert (last.actor, last.move, last.reason) == ("operator", "cancel", "cancelled by operator:olga")


def test_cancelling_a_finished_run_changes_nothing_and_says_so(operator):
    run = make_execution(status="success")
    response = operator.post(f"/admin/executions/execution/{run.pk}/cancel/", follow=True)
    run.refresh_from_db()
    assert run.status == "success" and "already finished" in response.content.decode()


def test_the_actions_refuse_get_requests(operator):
    run = make_execution(status="running")
    assert operator.get(f"/admin/executions/execution/{run.pk}/cancel/").status_code == 405
    run.refresh_from_db()
    assert run.status == "running"
