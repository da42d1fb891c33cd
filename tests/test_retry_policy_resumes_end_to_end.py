"""End to end: with `system_retry_resume` on, a run whose worker is SIGKILLed mid-step
is reaped as P-0003 and the retry policy's beat task resumes it on its own: the
interrupted (idempotent) step runs again, the step before it does not."""

import os
import signal

import pytest

from executions.enqueue import enqueue
from executions.models import Execution, Step
from tests.e2e import supervisor_pids, wait_for, wait_status
from tests.helpers_http import LoopbackHTTPServer, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_policy_resumes_a_run_lost_in_an_idempotent_step(pipeline, settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    env = {"CONVEYOR_HTTP_ALLOWED_NETWORKS": "127.0.0.1/32", "CONVEYOR_SYSTEM_RETRY_TICK_S": "0.5"}
    with LoopbackHTTPServer() as server:
        server.route("/order", Reply(201, {"order": 9}))
        definition = {
            "steps": [
                {"id": "order", "action": "http_request", "config": {"url": server.url("/order"), "method": "POST"}},
                {"id": "wait", "action": "python", "idempotent": True,
                 "config": {"callable": "tests.callables.sleep", "kwargs": {"seconds": 2}}},
            ]
        }  # fmt: skip
        workflow = pipeline.workflow(
            definition, system_retry_max_attempts=1, system_retry_backoff_seconds=1, system_retry_resume=True
        )
        pipeline.worker(queues="runs", **env)
        pipeline.reaper(**env)
        original = enqueue(workflow, trigger_type="manual").execution
        wait_for(
            lambda: Step.objects.filter(execution_id=original.pk, step_id="wait", status="running").exists(),
            timeout=60,
        )
        pool_pid, _ = supervisor_pids(original.pk)

        os.kill(pool_pid, signal.SIGKILL)

        assert wait_status(original.pk, {"system_error"}, timeout=60).error_code == "P-0003"
        resumed = wait_for(lambda: Execution.objects.filter(rerun_of=original).first(), timeout=60)
        assert (resumed.trigger_type, resumed.resume_step, resumed.attempt) == ("resume", "wait", 2)
        assert wait_status(resumed.pk, timeout=90).status == "success"
        assert server.paths == ["/order"]  # the POST ran once, in the original
    assert pipeline.metric("conveyor_resumes_total", origin="policy", outcome="resumed") == 1
