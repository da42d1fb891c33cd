"""SIGTERM (a deploy): in-flight runs get the soft-shutdown grace; a run still going when
it ends is written at once by its supervisor, never left for the reaper."""

import signal

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
SHUTDOWN = {"REMAP_SIGTERM": "SIGQUIT", "CONVEYOR_WORKER_SOFT_SHUTDOWN_TIMEOUT_S": "3"}


def test_sigterm_during_a_short_run_lets_it_finish(pipeline):
    worker = pipeline.worker(**SHUTDOWN)
    execution = enqueue(pipeline.workflow(sleeping(1.0)), trigger_type="manual").execution
    wait_for(lambda: running_with_step(execution.pk), timeout=20)

    worker.send_signal(signal.SIGTERM)

    assert wait_status(execution.pk, timeout=20).status == "success"
    assert worker.wait(timeout=20) is not None


@pytest.mark.parametrize("runtime", ["isolated", "inline"])
def test_sigterm_during_a_run_longer_than_the_grace_writes_p0003_worker_shut_down_at_once(pipeline, runtime):
    worker = pipeline.worker(**SHUTDOWN)
    execution = enqueue(pipeline.workflow(sleeping(30), runtime=runtime), trigger_type="manual").execution
    wait_for(lambda: Step.objects.filter(execution_id=execution.pk).exists(), timeout=20)
    _, runtime_pid = supervisor_pids(execution.pk)

    worker.send_signal(signal.SIGTERM)

    failed = wait_status(execution.pk, {"system_error"}, timeout=15)  # no reaper runs in this test
    assert (failed.error_code, failed.error_message) == ("P-0003", "worker shut down")
    assert failed.status_actor == "runtime"
    assert "may have partly run" in failed.customer_message
    if runtime_pid:
        assert wait_for(lambda: process_gone(runtime_pid), timeout=5)
    assert worker.wait(timeout=20) is not None


def test_sigterm_before_the_first_step_writes_p0001_safe_to_rerun(pipeline, tmp_path):
    worker = pipeline.worker(**SHUTDOWN, **slow_start_python(tmp_path, 30))
    execution = enqueue(pipeline.workflow(sleeping(0.1)), trigger_type="manual").execution
    wait_for(lambda: "runtime=" in type(execution).objects.get(pk=execution.pk).worker, timeout=20)

    worker.send_signal(signal.SIGTERM)

    failed = wait_status(execution.pk, {"system_error"}, timeout=15)
    assert failed.error_code == "P-0001" and failed.safe_to_rerun
    assert not Step.objects.filter(execution=failed).exists()
