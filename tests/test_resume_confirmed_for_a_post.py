"""End to end: a run fails in a POST whose receiver is not declared to honour the
Idempotency-Key; resuming it is refused naming the step, then confirmed; a real worker
sends the POST again with the original run's key, and the GET before it is not repeated."""

import pytest

from executions import services
from executions.enqueue import enqueue
from executions.models import Execution
from tests.e2e import wait_status
from tests.helpers_http import LoopbackHTTPServer, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_post_that_may_have_run_is_resumed_only_once_confirmed(pipeline, settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with LoopbackHTTPServer() as server:
        server.route("/quote", Reply(200, {"price": 3}))
        server.route("/pay", Reply(504, "gateway timeout"))  # did the payment go through? unknown
        definition = {
            "steps": [
                {"id": "quote", "action": "http_request", "config": {"url": server.url("/quote")}},
                {"id": "pay", "action": "http_request", "config": {"url": server.url("/pay"), "method": "POST"}},
            ]
        }
        pipeline.worker(CONVEYOR_HTTP_ALLOWED_NETWORKS="127.0.0.1/32")
        original = wait_status(enqueue(pipeline.workflow(definition), trigger_type="manual").execution.pk, timeout=60)
        assert (original.status, original.error_type) == ("error", "external")

        with pytest.raises(services.ResumeNeedsConfirmation) as refused:
            services.resume_run(original, actor="api:ann", origin="api")
        assert refused.value.step_id == "pay"
        assert not Execution.objects.filter(rerun_of=original).exists()

        server.route("/pay", Reply(200, {"paid": True}))
        resumed = services.resume_run(original, actor="api:ann", origin="api", confirm_repeat=True)
        done = wait_status(resumed.pk, timeout=60)

        assert done.status == "success", done.error_message
        assert server.paths == ["/quote", "/pay", "/pay"]
        keys = [seen.headers["idempotency-key"] for seen in server.requests[1:]]
        assert keys == [f"{original.pk}:pay", f"{original.pk}:pay"]
