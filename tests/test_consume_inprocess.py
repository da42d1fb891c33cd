"""The consumer's decisions, called in-process on PostgreSQL (no queue needed for these
paths; the queue-facing paths are end to end in tests/test_pipeline_*.py)."""

import uuid

import pytest
from django.test import override_settings
from django.utils import timezone

from executions.models import Execution, Step, Transition
from executions.outputs import run_output
from failures.statuses import ExecutionStatus
from messaging import messages
from pipeline.consume import Outcome, consume
from tests.factories import make_execution, make_workflow

S = ExecutionStatus
pytestmark = pytest.mark.django_db(transaction=True)

TWO_STEPS = {
    "steps": [
        {"id": "first", "action": "transform", "config": {"output": {"n": "{{ input.n }}"}}},
        {"id": "second", "action": "transform", "config": {"output": {"echo": "{{ steps.first.output.n }}"}}},
    ]
}


def _run(execution) -> Outcome:
    return consume(messages.build(execution.id, execution.dispatch_key), hostname="test")


@pytest.mark.parametrize("runtime", ["inline", "isolated"])
def test_a_claimed_run_executes_every_step_and_ends_success(runtime):
    execution = make_execution(make_workflow(definition=TWO_STEPS), input={"n": 7}, runtime=runtime)
    assert _run(execution) == Outcome.CLAIMED
    execution.refresh_from_db()
    assert execution.status == S.SUCCESS, execution.error_message
    assert run_output(execution)["result"] == {"echo": 7}
    assert list(Step.objects.filter(execution=execution).values_list("step_id", "status")) == [
        ("first", "success"),
        ("second", "success"),
    ]
    moves = list(Transition.objects.filter(execution=execution).values_list("move", flat=True))
    assert moves == ["claim", "complete"]
    assert execution.duration_ms is not None and execution.started_at and execution.finished_at


def test_a_message_for_a_missing_run_is_dropped():
    assert consume(messages.build(uuid.uuid4())) == Outcome.MISSING


def test_a_running_run_is_a_duplicate_and_is_not_touched():
    execution = make_execution(status=S.RUNNING, claim_token=uuid.uuid4())
    assert _run(execution) == Outcome.DUPLICATE
    execution.refresh_from_db()
    assert execution.status == S.RUNNING


@pytest.mark.parametrize("status", [S.SUCCESS, S.ERROR, S.CANCELLED, S.SKIPPED])
def test_a_terminal_run_is_a_duplicate(status):
    assert _run(make_execution(status=status)) == Outcome.DUPLICATE


def test_a_disabled_workflows_run_is_skipped():
    execution = make_execution(make_workflow(enabled=False))
    assert _run(execution) == Outcome.SKIPPED
    execution.refresh_from_db()
    assert execution.status == S.SKIPPED
    assert Transition.objects.get(execution=execution).reason == "workflow disabled"


def test_a_deleted_workflows_run_is_skipped():
    execution = make_execution(make_workflow(deleted_at=timezone.now()))
    assert _run(execution) == Outcome.SKIPPED


@override_settings(FAULT_INJECTION=["consumer"])
def test_an_exception_inside_the_consumer_is_the_backstops_e0004():
    execution = make_execution(runtime="inline")
    assert _run(execution) == Outcome.BACKSTOP
    execution.refresh_from_db()
    assert (execution.status, execution.error_code, execution.error_category) == (
        S.SYSTEM_ERROR,
        "E-0004",
        "infrastructure",
    )
    assert "could not process" in execution.customer_message


@override_settings(FAULT_INJECTION=["dispatch"])
def test_an_unexpected_dispatch_error_is_p0004():
    execution = make_execution(runtime="inline")
    _run(execution)
    execution.refresh_from_db()
    assert (execution.status, execution.error_code) == (S.SYSTEM_ERROR, "P-0004")


@override_settings(RUNTIME_PYTHON="/nonexistent/python")
def test_a_runtime_that_cannot_be_spawned_is_p0002_and_safe_to_rerun():
    execution = make_execution(runtime="isolated")
    _run(execution)
    execution.refresh_from_db()
    assert (execution.status, execution.error_code) == (S.SYSTEM_ERROR, "P-0002")
    assert execution.safe_to_rerun and not Step.objects.filter(execution=execution).exists()


def test_a_late_message_heals_a_p0005_run_which_then_runs_to_success():
    execution = make_execution(
        make_workflow(definition=TWO_STEPS),
        status=S.SYSTEM_ERROR,
        error_type="system",
        error_code="P-0005",
        runtime="inline",
        input={"n": 1},
    )
    assert _run(execution) == Outcome.CLAIMED
    execution.refresh_from_db()
    assert execution.status == S.SUCCESS
    assert list(Transition.objects.filter(execution=execution).values_list("move", flat=True)) == [
        "heal-late-message",
        "complete",
    ]


def test_a_second_delivery_of_the_same_message_makes_no_second_run():
    execution = make_execution(runtime="inline")
    envelope = messages.build(execution.id)
    assert consume(envelope) == Outcome.CLAIMED
    assert consume(envelope) == Outcome.DUPLICATE
    assert Transition.objects.filter(execution=execution, move="claim").count() == 1
    assert Execution.objects.filter(workflow=execution.workflow).count() == 1
