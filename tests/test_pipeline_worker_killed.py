"""Killing the worker: the run is reaped, its runtime child is gone, nothing finishes unseen.

The reaper is the backstop: a killed pool process is written at once by its worker's
failure hook (tests/test_pipeline_pool_process_lost_is_written_by_the_hook.py), so the
tests of a pool process killed here turn the hooks off (CONVEYOR_FAILURE_HOOKS=0) to
prove the reaper still finds what no hook reports."""

import os
import signal
import time

import pytest

from executions.enqueue import enqueue
from executions.models import Step
from tests.e2e import (
    process_gone,
    running_with_step,
    sleeping,
    slow_start_python,
    supervisor_pids,
    wait_for,
    wait_status,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _assert_worker_lost(execution_id, runtime_pid):
    execution = wait_status(execution_id, {"system_error"}, timeout=20)
    assert (execution.error_type, execution.error_category, execution.error_code) == (
        "system",
        "infrastructure",
        "P-0003",
    )
    assert "may have partly run" in execution.customer_message and not execution.safe_to_rerun
    assert "worker lost" in execution.error_message and execution.status_actor == "reaper"
    assert wait_for(lambda: process_gone(runtime_pid), timeout=5), "the runtime child outlived its supervisor"
    # The step never finished: nothing completed unseen after the kill.
    time.sleep(1.5)
    assert Step.objects.get(execution_id=execution_id).status == "running"
    return execution


def test_sigkill_of_the_supervising_pool_process_mid_step_is_reaped_as_p0003(pipeline):
    pipeline.worker(CONVEYOR_FAILURE_HOOKS=0)
    pipeline.reaper()
    execution = enqueue(pipeline.workflow(sleeping(1.0, steps=3)), trigger_type="manual").execution
    wait_for(lambda: running_with_step(execution.pk), timeout=20)
    pool_pid, runtime_pid = supervisor_pids(execution.pk)

    os.kill(pool_pid, signal.SIGKILL)

    _assert_worker_lost(execution.pk, runtime_pid)
    assert pipeline.metric("conveyor_reaped_total", code="P-0003") == 1


def test_sigkill_of_the_workers_main_process_mid_step_is_reaped_as_p0003(pipeline):
    worker = pipeline.worker()
    pipeline.reaper()
    execution = enqueue(pipeline.workflow(sleeping(1.0, steps=3)), trigger_type="manual").execution
    wait_for(lambda: running_with_step(execution.pk), timeout=20)
    pool_pid, runtime_pid = supervisor_pids(execution.pk)

    worker.kill()

    _assert_worker_lost(execution.pk, runtime_pid)
    assert process_gone(pool_pid)


def test_killed_before_its_first_step_is_p0001_and_safe_to_rerun(pipeline, tmp_path):
    pipeline.worker(**slow_start_python(tmp_path, 30), CONVEYOR_FAILURE_HOOKS=0)
    pipeline.reaper()
    execution = enqueue(pipeline.workflow(sleeping(0.1)), trigger_type="manual").execution
    wait_for(lambda: "runtime=" in type(execution).objects.get(pk=execution.pk).worker, timeout=20)
    pool_pid, runtime_pid = supervisor_pids(execution.pk)

    os.kill(pool_pid, signal.SIGKILL)

    reaped = wait_status(execution.pk, {"system_error"}, timeout=20)
    assert (reaped.error_code, reaped.error_category, reaped.status_actor) == ("P-0001", "infrastructure", "reaper")
    assert reaped.safe_to_rerun and "safe to re-run" in reaped.customer_message
    assert not Step.objects.filter(execution_id=execution.pk).exists()
    assert wait_for(lambda: process_gone(runtime_pid), timeout=5)
