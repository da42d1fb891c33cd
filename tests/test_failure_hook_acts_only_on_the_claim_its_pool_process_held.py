"""A failure hook writes a run only while the claim of the dead pool process still holds
it: a run re-claimed by another worker after a redelivery, a run re-claimed between the
hook's read and its write, a neighbour pid, a finished or never-claimed run are never
touched (against PostgreSQL, through the real status writer)."""

import uuid
from datetime import timedelta

import pytest
from celery.exceptions import TimeLimitExceeded, WorkerLostError
from django.utils import timezone

from executions import metrics as execution_metrics
from executions.models import Execution, Step, Transition
from executions.transitions import start_step, transition
from failures.statuses import Actor, ExecutionStatus
from messaging import messages
from pipeline import failure_hooks
from pipeline.failure_hooks import Outcome, claim_holder, record_task_failure
from tests.factories import make_execution

pytestmark = pytest.mark.django_db(transaction=True)
S = ExecutionStatus
LOST = WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL) Job: 0.")
NODE_A, NODE_B = "runs-a@host1", "runs-b@host2"


def _claimed(holder: str, *, steps: int = 0) -> tuple[Execution, uuid.UUID]:
    execution = make_execution()
    token = uuid.uuid4()
    now = timezone.now()
    assert transition(
        execution.id,
        S.RUNNING,
        actor=Actor.CONSUMER,
        values={"claim_token": token, "started_at": now, "heartbeat_at": now, "worker": f"{holder} runtime=4242"},
    )
    for position in range(steps):
        assert start_step(execution.id, token, step_id=f"s{position}", action="python", position=position)
    return execution, token


def _reclaim(execution: Execution, holder: str) -> uuid.UUID:
    """What a redelivered message does once the first claim is gone: a new claim by
    another worker (here written directly: the first run's P-0005 heal or a duplicate)."""
    token = uuid.uuid4()
    Execution.objects.filter(pk=execution.pk).update(claim_token=token, worker=holder, heartbeat_at=timezone.now())
    return token


def _report(execution, exc=LOST, *, node=NODE_A, pid=111, task_id=None):
    return record_task_failure(
        exc,
        task_id=task_id or uuid.uuid4().hex,
        args=[messages.build(execution.id)],
        hostname=node,
        pool_pid=pid,
    )


def _hook_rows(execution) -> int:
    return Transition.objects.filter(execution_id=execution.pk, actor=Actor.HOOK).count()


def test_the_pool_processs_own_claim_mid_step_is_p0003_by_the_hook():
    execution, token = _claimed(claim_holder(NODE_A, 111), steps=1)
    Execution.objects.filter(pk=execution.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=4))

    assert _report(execution) == Outcome.WRITTEN

    execution.refresh_from_db()
    assert (execution.status, execution.error_code, execution.status_actor) == (S.SYSTEM_ERROR, "P-0003", "hook")
    assert execution.claim_token == token and "worker lost" in execution.error_message
    assert _hook_rows(execution) == 1


def test_the_pool_processs_own_claim_before_any_step_is_p0001_safe_to_rerun():
    execution, _ = _claimed(claim_holder(NODE_A, 111))

    assert _report(execution) == Outcome.WRITTEN

    execution.refresh_from_db()
    assert (execution.error_code, execution.status_actor, execution.safe_to_rerun) == ("P-0001", "hook", True)


def test_a_celery_time_limit_on_the_own_claim_is_e0001():
    execution, _ = _claimed(claim_holder(NODE_A, 111), steps=2)

    assert _report(execution, TimeLimitExceeded(30.0)) == Outcome.WRITTEN

    execution.refresh_from_db()
    assert (execution.error_code, execution.classifier_rule) == ("E-0001", "celery-time-limit")


def test_a_run_reclaimed_by_another_worker_after_a_redelivery_is_not_touched():
    execution, _ = _claimed(claim_holder(NODE_A, 111), steps=1)
    new_token = _reclaim(execution, f"{claim_holder(NODE_B, 111)} runtime=777")

    assert _report(execution) == Outcome.NOT_OURS

    execution.refresh_from_db()
    assert (execution.status, execution.claim_token, execution.status_actor) == (S.RUNNING, new_token, "consumer")
    assert _hook_rows(execution) == 0


def test_a_run_reclaimed_between_the_hooks_read_and_its_write_loses_the_cas_and_is_counted(monkeypatch):
    execution, _ = _claimed(claim_holder(NODE_A, 111), steps=1)

    class _ReclaimedWhileReading:
        """The step lookup the hook makes between its read and its CAS: another worker's
        claim lands right then, with the same worker string (a reused pid) but a new token."""

        class objects:
            @staticmethod
            def filter(**kwargs):
                _reclaim(execution, claim_holder(NODE_A, 111))
                return Step.objects.filter(**kwargs)

    monkeypatch.setattr(failure_hooks, "Step", _ReclaimedWhileReading)
    conflicts = execution_metrics.TRANSITION_CONFLICTS.labels(to_status=S.SYSTEM_ERROR, actor=Actor.HOOK)
    before = conflicts._value.get()

    assert _report(execution) == Outcome.LOST

    execution.refresh_from_db()
    assert execution.status == S.RUNNING and _hook_rows(execution) == 0
    assert conflicts._value.get() == before + 1


def test_a_neighbour_pid_on_the_same_worker_is_not_the_claim():
    execution, _ = _claimed(claim_holder(NODE_A, 1110), steps=1)

    assert _report(execution, pid=111) == Outcome.NOT_OURS
    assert _report(execution, pid=11, task_id="other") == Outcome.NOT_OURS

    execution.refresh_from_db()
    assert execution.status == S.RUNNING


def test_a_run_its_supervisor_already_finished_is_not_touched():
    execution, token = _claimed(claim_holder(NODE_A, 111), steps=1)
    assert transition(execution.id, S.SUCCESS, actor=Actor.RUNTIME, claim_token=token)

    assert _report(execution) == Outcome.NOT_OURS

    execution.refresh_from_db()
    assert execution.status == S.SUCCESS


def test_a_run_the_dead_process_never_claimed_stays_pending_for_the_reaper():
    execution = make_execution()

    assert _report(execution) == Outcome.UNCLAIMED

    execution.refresh_from_db()
    assert execution.status == S.PENDING


def test_the_same_failure_reported_twice_is_written_once():
    execution, _ = _claimed(claim_holder(NODE_A, 111), steps=1)

    assert _report(execution, task_id="t-1") == Outcome.WRITTEN
    assert _report(execution, task_id="t-1") == Outcome.DUPLICATE
    assert _hook_rows(execution) == 1


def test_a_message_that_names_no_run_is_counted_not_dropped_silently():
    outcome = record_task_failure(LOST, task_id="t-bad", args=[{"forged": True}], hostname=NODE_A, pool_pid=1)
    assert outcome == Outcome.NO_RUN
    counted = failure_hooks.metrics.FAILURE_HOOKS.labels(rule="worker-lost", outcome="no_run")
    assert counted._value.get() >= 1


def test_hooks_turned_off_leave_the_run_to_the_reaper(settings):
    settings.FAILURE_HOOKS = False
    execution, _ = _claimed(claim_holder(NODE_A, 111), steps=1)

    assert _report(execution) == Outcome.DISABLED

    execution.refresh_from_db()
    assert execution.status == S.RUNNING
