"""The isolated runtime failing: its child killed or out of memory (P-0003), the deadline
(E-0001), a runtime that cannot be spawned (P-0002). Each written at once by the
supervisor, not left for the reaper."""

import os
import signal

import pytest

from executions.enqueue import enqueue
from executions.models import Step
from tests.e2e import (
    calling,
    process_gone,
    running_with_step,
    sleeping,
    supervisor_pids,
    wait_for,
    wait_status,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _system_error(execution_id, code):
    execution = wait_status(execution_id, {"system_error"}, timeout=30)
    assert (execution.error_type, execution.error_code) == ("system", code), execution.error_message
    assert execution.status_actor == "runtime"
    assert code in execution.customer_message
    return execution


def test_the_runtime_child_killed_by_a_signal_is_p0003(pipeline):
    pipeline.worker()
    execution = enqueue(pipeline.workflow(sleeping(5)), trigger_type="manual").execution
    wait_for(lambda: running_with_step(execution.pk), timeout=20)
    _, runtime_pid = supervisor_pids(execution.pk)

    os.kill(runtime_pid, signal.SIGKILL)

    failed = _system_error(execution.pk, "P-0003")
    assert "killed by SIGKILL" in failed.error_message
    assert "SIGKILL" not in failed.customer_message
    assert pipeline.metric("conveyor_transitions_total", from_status="running", to_status="system_error") == 1


def test_the_runtime_out_of_memory_is_p0003_never_a_user_error(pipeline):
    pipeline.worker(CONVEYOR_RUNTIME_MEMORY_LIMIT_MB=400)
    execution = enqueue(pipeline.workflow(calling("tests.callables.allocate", megabytes=2000)), trigger_type="manual")
    failed = _system_error(execution.execution.pk, "P-0003")
    assert failed.error_category == "infrastructure"
    assert failed.classifier_rule == "out-of-memory"


def test_a_run_past_its_deadline_is_stopped_and_written_e0001(pipeline):
    pipeline.worker()
    execution = enqueue(pipeline.workflow(sleeping(30), deadline_seconds=2), trigger_type="manual").execution
    wait_for(lambda: running_with_step(execution.pk), timeout=20)
    _, runtime_pid = supervisor_pids(execution.pk)

    failed = _system_error(execution.pk, "E-0001")
    assert failed.error_category == "workflow_engine"
    assert "deadline" in failed.customer_message
    assert wait_for(lambda: process_gone(runtime_pid), timeout=5)


def test_a_runtime_that_cannot_be_spawned_is_p0002(pipeline):
    pipeline.worker(CONVEYOR_RUNTIME_PYTHON="/nonexistent/bin/python3")
    execution = enqueue(pipeline.workflow(), trigger_type="manual").execution
    failed = _system_error(execution.pk, "P-0002")
    assert failed.safe_to_rerun and not Step.objects.filter(execution=failed).exists()
    assert "could not start a runtime" in failed.customer_message
