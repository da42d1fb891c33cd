"""A pool process killed under its run is written at once by the worker's main process
(Celery's WorkerLostError, pipeline.failure_hooks), at the DEFAULT heartbeat and stale
thresholds: only a hook can be this fast, the reaper would wait a minute or more."""

import os
import signal
import urllib.request

import pytest

from executions.enqueue import enqueue
from executions.models import Execution, Step, Transition
from tests.e2e import (
    free_port,
    process_gone,
    running_with_step,
    sleeping,
    slow_start_python,
    supervisor_pids,
    wait_for,
    wait_status,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
# The defaults of config/settings.py: a lost run is stale after 60 s, swept every 60 s.
DEFAULT_THRESHOLDS = {
    "CONVEYOR_HEARTBEAT_INTERVAL_S": "10",
    "CONVEYOR_STALE_AFTER_S": "60",
    "CONVEYOR_REAPER_INTERVAL_S": "60",
}
# Well before the stale threshold: a write within this bound cannot be the reaper's.
HOOK_BOUND_S = 10


def _written_by_the_hook(execution_id, code: str) -> Execution:
    execution = wait_status(execution_id, {"system_error"}, timeout=HOOK_BOUND_S)
    assert (execution.error_type, execution.error_category, execution.error_code) == (
        "system",
        "infrastructure",
        code,
    ), execution.error_message
    assert execution.status_actor == "hook"
    last = Transition.objects.filter(execution_id=execution_id).order_by("at", "id").last()
    assert (last.actor, last.move, last.to_status, last.error_code) == ("hook", "fail", "system_error", code)
    assert "SIGKILL" in execution.error_message and "SIGKILL" not in execution.customer_message
    assert execution.classifier_rule == "worker-lost"
    return execution


def _exported(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_sigkill_of_the_pool_process_mid_step_is_p0003_written_by_the_hook(pipeline):
    port = free_port()
    pipeline.worker(CONVEYOR_WORKER_METRICS_PORT=port, **DEFAULT_THRESHOLDS)
    pipeline.reaper(**DEFAULT_THRESHOLDS)
    execution = enqueue(pipeline.workflow(sleeping(1.0, steps=30)), trigger_type="manual").execution
    wait_for(lambda: running_with_step(execution.pk), timeout=30)
    pool_pid, runtime_pid = supervisor_pids(execution.pk)

    os.kill(pool_pid, signal.SIGKILL)

    lost = _written_by_the_hook(execution.pk, "P-0003")
    assert "may have partly run" in lost.customer_message and not lost.safe_to_rerun
    assert f"pid={pool_pid}" in lost.error_message
    assert wait_for(lambda: process_gone(runtime_pid), timeout=5), "the runtime child outlived its supervisor"
    assert Step.objects.filter(execution_id=execution.pk, status="running").exists()
    assert pipeline.metric("conveyor_reaped_total") == 0
    # The detection latency, on the worker's own exporter (its main process wrote it).
    observed = 'conveyor_detection_latency_seconds_count{code="P-0003",writer="hook"} 1.0'
    text = wait_for(lambda: (t := _exported(port)) and observed in t and t, timeout=10)
    assert 'conveyor_failure_hooks_total{outcome="written",rule="worker-lost"} 1.0' in text


def test_sigkill_of_the_pool_process_before_the_first_step_is_p0001_safe_to_rerun(pipeline, tmp_path):
    pipeline.worker(**slow_start_python(tmp_path, 60), **DEFAULT_THRESHOLDS)
    pipeline.reaper(**DEFAULT_THRESHOLDS)
    execution = enqueue(pipeline.workflow(sleeping(0.1)), trigger_type="manual").execution
    wait_for(lambda: "runtime=" in Execution.objects.get(pk=execution.pk).worker, timeout=30)
    pool_pid, runtime_pid = supervisor_pids(execution.pk)

    os.kill(pool_pid, signal.SIGKILL)

    lost = _written_by_the_hook(execution.pk, "P-0001")
    assert lost.safe_to_rerun and "safe to re-run" in lost.customer_message
    assert not Step.objects.filter(execution_id=execution.pk).exists()
    assert wait_for(lambda: process_gone(runtime_pid), timeout=5), "the runtime child outlived its supervisor"
