"""A Celery time limit on the run task is E-0001, written at once, at the default stale
threshold: the hard limit by the worker's main process (its failure hook runs before the
pool process is terminated), the soft limit by the supervisor (SoftTimeLimitExceeded is
raised in it and the classifier names it). The isolated runtime's child is gone."""

import pytest

from executions.enqueue import enqueue
from executions.models import Execution, Transition
from tests.e2e import process_gone, sleeping, supervisor_pids, wait_for, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DEFAULT_THRESHOLDS = {
    "CONVEYOR_HEARTBEAT_INTERVAL_S": "10",
    "CONVEYOR_STALE_AFTER_S": "60",
    "CONVEYOR_REAPER_INTERVAL_S": "60",
}
# Long enough for the isolated child to start and run steps on a loaded machine.
LIMIT_S = 10
# The limit, plus a bound far below the stale threshold.
BOUND_S = LIMIT_S + 20


def _supervised(execution_id) -> bool:
    """Claimed and handed to its isolated runtime's child (which may not have started a
    step yet: the limit counts from the task's start)."""
    return Execution.objects.filter(pk=execution_id, status="running", worker__contains="runtime=").exists()


def _timed_out(execution_id, actor: str) -> Execution:
    execution = wait_status(execution_id, {"system_error"}, timeout=BOUND_S)
    assert (execution.error_type, execution.error_code, execution.classifier_rule) == (
        "system",
        "E-0001",
        "celery-time-limit",
    ), execution.error_message
    assert execution.status_actor == actor
    assert "deadline" in execution.customer_message
    moves = list(Transition.objects.filter(execution_id=execution_id).values_list("actor", "to_status"))
    assert moves[-1] == (actor, "system_error")
    assert [to for _, to in moves].count("system_error") == 1
    return execution


def test_celerys_hard_time_limit_is_e0001_written_by_the_hook(pipeline):
    worker = pipeline.worker(extra_args=(f"--time-limit={LIMIT_S}",), **DEFAULT_THRESHOLDS)
    pipeline.reaper(**DEFAULT_THRESHOLDS)
    execution = enqueue(pipeline.workflow(sleeping(1.0, steps=60)), trigger_type="manual").execution
    wait_for(lambda: _supervised(execution.pk), timeout=30)
    pool_pid, runtime_pid = supervisor_pids(execution.pk)

    failed = _timed_out(execution.pk, "hook")

    assert "TimeLimitExceeded" in failed.error_message
    assert wait_for(lambda: process_gone(runtime_pid), timeout=10), "the runtime child outlived its supervisor"
    assert wait_for(lambda: process_gone(pool_pid), timeout=10), "the timed-out pool process was not terminated"
    assert worker.is_running()


def test_celerys_soft_time_limit_is_e0001_written_by_the_supervisor(pipeline):
    pipeline.worker(extra_args=(f"--soft-time-limit={LIMIT_S}", "--time-limit=120"), **DEFAULT_THRESHOLDS)
    execution = enqueue(pipeline.workflow(sleeping(1.0, steps=60)), trigger_type="manual").execution
    wait_for(lambda: _supervised(execution.pk), timeout=30)
    _, runtime_pid = supervisor_pids(execution.pk)

    failed = _timed_out(execution.pk, "runtime")

    assert "SoftTimeLimitExceeded" in failed.error_message
    assert wait_for(lambda: process_gone(runtime_pid), timeout=10), "the runtime child outlived its supervisor"
