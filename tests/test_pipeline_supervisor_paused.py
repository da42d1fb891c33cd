"""A supervisor frozen past the stale threshold is reaped; when it resumes, its own claim
commits success and the run heals, once."""

import os
import signal

import pytest

from executions.enqueue import enqueue
from executions.models import Step, Transition
from executions.outputs import run_output
from tests.e2e import running_with_step, sleeping, supervisor_pids, wait_for, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_paused_supervisor_is_reaped_then_heals_to_success_counted_once(pipeline):
    pipeline.worker()
    pipeline.reaper()
    execution = enqueue(pipeline.workflow(sleeping(0.5, steps=3)), trigger_type="manual").execution
    wait_for(lambda: running_with_step(execution.pk), timeout=20)
    pool_pid, _ = supervisor_pids(execution.pk)

    os.kill(pool_pid, signal.SIGSTOP)
    try:
        reaped = wait_status(execution.pk, {"system_error"}, timeout=20)
        assert reaped.error_code == "P-0003" and reaped.status_actor == "reaper"
    finally:
        os.kill(pool_pid, signal.SIGCONT)

    healed = wait_status(execution.pk, {"success"}, timeout=20)
    assert healed.error_code == "" and run_output(healed)["result"] == {"slept": 0.5}
    assert list(Step.objects.filter(execution=healed).values_list("status", flat=True)) == ["success"] * 3
    assert Transition.objects.filter(execution=healed, move="heal-late-success").count() == 1
    # Counters move just after the writes they count are visible.
    assert wait_for(lambda: pipeline.metric("conveyor_self_heals_total", move="heal-late-success") == 1, timeout=10)
    assert wait_for(lambda: pipeline.metric("conveyor_reaped_total", code="P-0003") == 1, timeout=10)
