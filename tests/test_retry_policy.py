"""The system-error retry policy re-runs a run that ended system_error with a code that
proves no step started (P-0005 here), after a back-off and within the workflow's bound;
it never retries a user error or a run that may have partly run (P-0003), and does
nothing for a workflow that did not turn it on."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from executions.enqueue import enqueue
from executions.models import Execution
from executions.transitions import fail, start_step, transition
from failures.classifier import classify, system_fault
from failures.errors import UserCodeError
from failures.statuses import Actor, ExecutionStatus
from reaper.sweep import sweep
from scheduler.retry_policy import backoff_seconds, maybe_schedule_retry, tick
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db
S = ExecutionStatus


def retries(code: str) -> float:
    return REGISTRY.get_sample_value("conveyor_system_retries_total", {"code": code}) or 0.0


def lost(workflow, input=None) -> Execution:
    """A run whose message never reached a worker, aged out by the real reaper sweep: P-0005."""
    run = enqueue(workflow, trigger_type="manual", input=input or {"order": 1}).execution
    return reaped_if_lost(run)


def reaped_if_lost(run) -> Execution:
    from django.conf import settings

    sweep(now=timezone.now() + timedelta(seconds=settings.START_THRESHOLD_S + 1))
    run.refresh_from_db()
    assert (run.status, run.error_code) == (S.SYSTEM_ERROR, "P-0005")
    return run


def claimed(workflow) -> tuple[Execution, uuid.UUID]:
    run = enqueue(workflow, trigger_type="manual").execution
    token = uuid.uuid4()
    transition(run.pk, S.RUNNING, actor=Actor.CONSUMER, expected=[S.PENDING], values={"claim_token": token})
    return run, token


def later(run: Execution, seconds: float):
    return (run.finished_at or timezone.now()) + timedelta(seconds=seconds)


@pytest.fixture
def workflow():
    return make_workflow(system_retry_max_attempts=2, system_retry_backoff_seconds=10)


def test_a_p0005_run_is_retried_after_its_back_off_with_the_same_input(workflow):
    failed = lost(workflow, input={"order": 42})
    before = retries("P-0005")

    assert maybe_schedule_retry(failed.pk, now=later(failed, 9)).outcome == "not_due"
    decision = maybe_schedule_retry(failed.pk, now=later(failed, 10))

    assert decision.outcome == "retried"
    retry = decision.retry
    assert (retry.trigger_type, retry.status, retry.attempt, retry.rerun_of_id) == ("retry", "pending", 2, failed.pk)
    assert retry.input == {"order": 42} and retry.dispatch_key == f"retry:{failed.pk}:2"
    assert retries("P-0005") == before + 1
    # Asked again (another tick, another process): the same retry, no second one.
    assert maybe_schedule_retry(failed.pk, now=later(failed, 60)).outcome == "ineligible"
    assert Execution.objects.filter(rerun_of=failed).count() == 1


def test_retries_stop_at_the_workflows_bound_and_back_off_doubles(workflow):
    first = lost(workflow)
    second = maybe_schedule_retry(first.pk, now=later(first, 10)).retry
    second = reaped_if_lost(second)
    assert maybe_schedule_retry(second.pk, now=later(second, 19)).outcome == "not_due"  # 10 s * 2
    third = maybe_schedule_retry(second.pk, now=later(second, 20)).retry
    assert third.attempt == 3 and third.dispatch_key == f"retry:{second.pk}:3"
    third = reaped_if_lost(third)

    decision = maybe_schedule_retry(third.pk, now=later(third, 3600))
    assert decision.outcome == "ineligible" and "reached the bound of 2" in decision.reason
    assert Execution.objects.filter(workflow=workflow).count() == 3  # the run and two retries


def test_the_tick_retries_what_is_due_and_leaves_the_rest(workflow):
    due, fresh = lost(workflow), lost(workflow)
    Execution.objects.filter(pk=due.pk).update(finished_at=timezone.now() - timedelta(seconds=30))

    report = tick(now=timezone.now())

    assert len(report.retried) == 1 and report.not_due == 1
    assert Execution.objects.get(pk=report.retried[0]).rerun_of_id == due.pk
    assert not Execution.objects.filter(rerun_of=fresh).exists()


def test_a_user_error_is_never_retried(workflow):
    run, token = claimed(workflow)
    fail(run.pk, classify(UserCodeError("boom"), origin="step"), actor=Actor.RUNTIME, claim_token=token)
    run.refresh_from_db()
    assert run.status == S.ERROR

    decision = maybe_schedule_retry(run.pk, now=later(run, 3600))
    assert decision.outcome == "ineligible" and "only system errors are retried" in decision.reason
    assert tick(now=later(run, 3600)).retried == []


def test_a_run_that_may_have_partly_run_is_never_retried(workflow):
    run, token = claimed(workflow)
    assert start_step(run.pk, token, step_id="noop", action="transform", position=0)
    fail(run.pk, system_fault("P-0003", "worker lost"), actor=Actor.REAPER, expected=[S.RUNNING])
    run.refresh_from_db()
    assert (run.status, run.error_code) == (S.SYSTEM_ERROR, "P-0003")

    decision = maybe_schedule_retry(run.pk, now=later(run, 3600))
    assert decision.outcome == "ineligible" and "P-0003 may have partly run" in decision.reason
    assert tick(now=later(run, 3600)).retried == []


def test_the_policy_is_off_by_default():
    failed = lost(make_workflow())
    decision = maybe_schedule_retry(failed.pk, now=later(failed, 3600))
    assert decision.outcome == "ineligible" and "off" in decision.reason


def test_a_run_a_user_already_re_ran_is_not_retried_as_well(workflow):
    from executions.rerun import rerun

    failed = lost(workflow)
    rerun(failed, actor="test")
    decision = maybe_schedule_retry(failed.pk, now=later(failed, 3600))
    assert decision.outcome == "ineligible" and "already re-run" in decision.reason


def test_back_off_is_capped_so_every_retry_comes_due_within_the_scan(settings):
    settings.SYSTEM_RETRY_LOOKBACK_S = 3600
    assert [backoff_seconds(30, attempt) for attempt in (1, 2, 3)] == [30, 60, 120]
    assert backoff_seconds(30, 20) == 1800
