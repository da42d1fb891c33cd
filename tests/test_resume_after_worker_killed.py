"""End to end: a real worker is SIGKILLed in the middle of a three-step run; the reaper
writes P-0003; an operator resumes it and a worker runs the resume: the step that was
interrupted runs again, the one before it is not executed again (the receiving
endpoint's request log shows it once) and its recorded output feeds the last step."""

import os
import signal

import pytest

from executions import services
from executions.enqueue import enqueue
from executions.models import Step
from tests.e2e import supervisor_pids, wait_for, wait_status
from tests.helpers_http import LoopbackHTTPServer, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
LOOPBACK = {"CONVEYOR_HTTP_ALLOWED_NETWORKS": "127.0.0.1/32"}


def three_steps(server) -> dict:
    return {
        "steps": [
            {"id": "order", "action": "http_request",
             "config": {"url": server.url("/order"), "method": "POST", "json": {"amount": 5}}},
            {"id": "wait", "action": "python", "idempotent": True,
             "config": {"callable": "tests.callables.sleep", "kwargs": {"seconds": 2}}},
            {"id": "confirm", "action": "http_request",
             "config": {"url": server.url("/confirm"), "method": "PUT", "json": "{{ steps.order.output.body }}"}},
        ]
    }  # fmt: skip


def in_step(execution_id, step_id: str):
    return Step.objects.filter(execution_id=execution_id, step_id=step_id, status="running").exists()


def test_a_run_killed_mid_way_is_resumed_without_repeating_its_earlier_steps(pipeline, settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with LoopbackHTTPServer() as server:
        server.route("/order", Reply(201, {"order": 17}))
        server.route("/confirm", Reply(200, {"confirmed": True}))
        pipeline.worker(**LOOPBACK)
        pipeline.reaper()
        original = enqueue(pipeline.workflow(three_steps(server)), trigger_type="manual").execution
        wait_for(lambda: in_step(original.pk, "wait"), timeout=60)
        pool_pid, _ = supervisor_pids(original.pk)

        os.kill(pool_pid, signal.SIGKILL)

        lost = wait_status(original.pk, {"system_error"}, timeout=60)
        assert lost.error_code == "P-0003"
        assert server.paths == ["/order"]

        resumed = services.resume_run(lost, actor="operator:olga", origin="operator")
        done = wait_status(resumed.pk, timeout=90)

        assert done.status == "success", done.error_message
        # The POST that had succeeded was not sent again; the resume went on from "wait".
        assert server.paths == ["/order", "/confirm"]
        assert server.requests[1].body == b'{"order": 17}'
        assert server.requests[1].headers["idempotency-key"] == f"{original.pk}:confirm"
    rows = {s.step_id: (s.status, s.reused) for s in Step.objects.filter(execution=done)}
    assert rows == {"order": ("success", True), "wait": ("success", False), "confirm": ("success", False)}
    assert done.resumed_notice == f"resumed from {original.pk} at step wait"
