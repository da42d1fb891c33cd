"""With `system_retry_resume` on, the system-error retry policy retries a P-0003 or E-0001
run as a resume when the step it was interrupted in is idempotent (same bound and
back-off as a retry); one interrupted in a step that is not is left for an operator,
counted once, and its customer message says so. With the flag off nothing changes."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from executions.models import Execution, Step
from failures.catalogue import NOT_RESUMED
from scheduler.retry_policy import maybe_schedule_retry, tick
from tests.factories import make_execution, make_workflow

pytestmark = pytest.mark.django_db


def definition(second_method: str) -> dict:
    return {
        "steps": [
            {"id": "fetch", "action": "http_request", "config": {"url": "https://api.example.com/a"}},
            {"id": "send", "action": "http_request",
             "config": {"url": "https://api.example.com/b", "method": second_method}},
        ]
    }  # fmt: skip


def lost_in_send(workflow, code: str = "P-0003", **fields) -> Execution:
    run = make_execution(
        workflow, status="system_error", error_type="system", error_category="infrastructure", error_code=code,
        status_actor="reaper", finished_at=timezone.now(), **fields,
    )  # fmt: skip
    Step.objects.create(execution=run, step_id="fetch", action="http_request", position=0, status="success", output={})
    Step.objects.create(execution=run, step_id="send", action="http_request", position=1, status="running")
    return run


def left_count() -> float:
    labels = {"origin": "policy", "outcome": "needs_confirmation"}
    return REGISTRY.get_sample_value("conveyor_resumes_total", labels) or 0.0


def resumed_count() -> float:
    return REGISTRY.get_sample_value("conveyor_resumes_total", {"origin": "policy", "outcome": "resumed"}) or 0.0


def workflow_for(method: str, **fields):
    values = {"system_retry_max_attempts": 2, "system_retry_backoff_seconds": 10, "system_retry_resume": True}
    values.update(fields)
    return make_workflow(definition=definition(method), **values)


@pytest.mark.parametrize("code", ["P-0003", "E-0001"])
def test_a_run_lost_in_an_idempotent_step_is_resumed_after_the_back_off(code):
    run = lost_in_send(workflow_for("PUT"), code)
    before = resumed_count()
    assert maybe_schedule_retry(run.pk, now=run.finished_at + timedelta(seconds=5)).outcome == "not_due"

    decision = maybe_schedule_retry(run.pk, now=run.finished_at + timedelta(seconds=11))

    assert decision.outcome == "retried"
    child = decision.retry
    assert (child.trigger_type, child.rerun_of_id, child.resume_step, child.attempt) == ("resume", run.pk, "send", 2)
    assert resumed_count() == before + 1
    # One per failed run, however often asked.
    assert maybe_schedule_retry(run.pk, now=run.finished_at + timedelta(seconds=60)).outcome == "ineligible"
    assert Execution.objects.filter(rerun_of=run).count() == 1


def test_the_bound_of_attempts_applies_to_resumes_too():
    run = lost_in_send(workflow_for("PUT"), attempt=3)
    assert maybe_schedule_retry(run.pk, now=run.finished_at + timedelta(hours=1)).outcome == "ineligible"


def test_a_run_lost_in_a_non_idempotent_step_is_left_for_an_operator_and_counted_once():
    run = lost_in_send(workflow_for("POST"))
    before = left_count()
    now = run.finished_at + timedelta(seconds=11)

    assert maybe_schedule_retry(run.pk, now=now).outcome == "left_for_operator"
    assert tick(now=now).retried == []  # a later pass neither resumes nor counts it again

    run.refresh_from_db()
    assert run.left_for_operator is True
    assert not Execution.objects.filter(rerun_of=run).exists()
    assert left_count() == before + 1
    assert NOT_RESUMED in run.customer_message and "(reference P-0003)" in run.customer_message


def test_the_tick_resumes_eligible_runs():
    run = lost_in_send(workflow_for("GET"))
    report = tick(now=run.finished_at + timedelta(seconds=11))
    assert len(report.retried) == 1
    assert Execution.objects.get(pk=report.retried[0]).resume_step == "send"


def test_with_the_flag_off_a_p0003_run_is_never_retried():
    run = lost_in_send(workflow_for("GET", system_retry_resume=False))
    decision = maybe_schedule_retry(run.pk, now=run.finished_at + timedelta(hours=1))
    assert decision.outcome == "ineligible" and "may have partly run" in decision.reason
    assert tick(now=run.finished_at + timedelta(seconds=11)).retried == []
