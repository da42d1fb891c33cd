"""The fork server killed: the run whose child it had forked is written at once (the death
chain killed the child: P-0003, it may have partly run), and the next run gets a new fork
server, whether the old one died during a run or while the pool process was idle."""

import os
import signal

import pytest

from executions.enqueue import enqueue
from tests.e2e import NOOP, process_gone, running_with_step, sleeping, supervisor_pids, wait_for, wait_status
from tests.harness.processes import proc_stat

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _fork_server_of(execution_id) -> tuple[int, int]:
    """(fork server pid, child pid) of a running run: the child's parent, itself a child
    of the supervising pool process."""
    pool_pid, child_pid = supervisor_pids(execution_id)
    assert child_pid is not None
    child = proc_stat(child_pid)
    assert child is not None
    server = proc_stat(child.ppid)
    assert server is not None and server.ppid == pool_pid, "the child's parent is not the pool's fork server"
    return child.ppid, child_pid


def test_a_killed_fork_server_fails_its_run_p0003_and_the_next_runs_get_a_new_one(pipeline):
    pipeline.worker()
    first = enqueue(pipeline.workflow(sleeping(10)), trigger_type="manual").execution
    wait_for(lambda: running_with_step(first.pk), timeout=30)
    server_pid, child_pid = _fork_server_of(first.pk)

    os.kill(server_pid, signal.SIGKILL)

    failed = wait_status(first.pk, {"system_error"}, timeout=30)
    assert (failed.error_code, failed.status_actor) == ("P-0003", "runtime"), failed.error_message
    assert not failed.safe_to_rerun
    assert wait_for(lambda: process_gone(child_pid), timeout=5), "the child outlived its fork server"

    second = enqueue(pipeline.workflow(sleeping(2)), trigger_type="manual").execution
    wait_for(lambda: running_with_step(second.pk), timeout=30)
    new_server_pid, _ = _fork_server_of(second.pk)
    assert new_server_pid != server_pid
    assert wait_status(second.pk, timeout=60).status == "success"

    # Dead while idle: found dead when the next run asks for it, replaced, the run succeeds.
    os.kill(new_server_pid, signal.SIGKILL)
    assert wait_for(lambda: process_gone(new_server_pid), timeout=5)
    third = enqueue(pipeline.workflow(NOOP), trigger_type="manual").execution
    done = wait_status(third.pk, timeout=60)
    assert done.status == "success", done.error_message
