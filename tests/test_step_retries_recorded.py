"""Step retries through the consumer and both runtimes, on PostgreSQL: every attempt is
on the step's row (over the isolated runtime's pipe too), a step that recovers lets its
run succeed, and one that used up its retries on a system cause ends the run
system_error E-0002 with the cause's own code and category beside it."""

import pytest
from prometheus_client import REGISTRY

from executions.api.serializers import run_error
from executions.models import Execution, Step
from failures.catalogue import Code
from messaging import messages
from observability.scrape import matching
from pipeline.consume import Outcome, consume
from tests.factories import make_execution, make_workflow
from tests.helpers_http import LoopbackHTTPServer, Reply
from tests.retry_clock import FakeClock
from workflows import retries

pytestmark = pytest.mark.django_db(transaction=True)
EXAMPLES = "workflows.actions.examples"


@pytest.fixture(autouse=True)
def loopback_allowed(settings, monkeypatch):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    monkeypatch.setenv("CONVEYOR_HTTP_ALLOWED_NETWORKS", "127.0.0.1/32")  # the isolated child's settings


def metric(name, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _run(execution) -> Execution:
    assert consume(messages.build(execution.id, execution.dispatch_key), hostname="test") == Outcome.CLAIMED
    execution.refresh_from_db()
    return execution


@pytest.mark.parametrize("runtime", ["inline", "isolated"])
def test_a_step_that_recovers_on_its_third_attempt_records_every_attempt_and_the_run_succeeds(runtime):
    with LoopbackHTTPServer() as server:
        count = {"n": 0}

        def flaky(seen):
            count["n"] += 1
            return Reply(503, "busy") if count["n"] <= 2 else Reply(200, {"ok": 1})

        server.route("/flaky", flaky)
        definition = {
            "steps": [
                {
                    "id": "call",
                    "action": "http_request",
                    "config": {"url": server.url("/flaky")},
                    "retry": {"max_attempts": 4, "delay_s": 0},
                }
            ]
        }
        before = metric("conveyor_step_retries_total", outcome="recovered")
        execution = _run(make_execution(make_workflow(definition=definition), runtime=runtime))
        keys = {seen.headers["idempotency-key"] for seen in server.requests}

    assert execution.status == "success", execution.error_message
    step = Step.objects.get(execution=execution)
    assert [a["outcome"] for a in step.attempts] == ["error", "error", "success"]
    assert step.attempts[0]["error_type"] == "external"
    assert keys == {f"{execution.pk}:call"}
    # Counted by the supervisor (this process), whichever runtime ran the step.
    assert metric("conveyor_step_retries_total", outcome="recovered") == before + 1


def test_a_database_outage_that_outlasts_the_retries_is_e0002_counted_as_database(settings, monkeypatch, client):
    settings.METRICS_QUEUES = []
    settings.PYTHON_CALLABLE_ALLOWLIST = [f"{EXAMPLES}.database_unavailable"]
    clock = FakeClock()
    monkeypatch.setattr(retries, "CLOCK", clock)
    definition = {
        "steps": [
            {
                "id": "db",
                "action": "python",
                "config": {"callable": f"{EXAMPLES}.database_unavailable"},
                "idempotent": True,
                "retry": {"max_attempts": 3, "delay_s": 2, "jitter": False},
            }
        ]
    }
    exhausted = metric("conveyor_step_retries_total", outcome="exhausted")
    execution = _run(make_execution(make_workflow(definition=definition), runtime="inline"))

    assert (execution.status, execution.error_type, execution.error_code) == ("system_error", "system", Code.E0002)
    assert execution.error_cause_code == Code.C0002
    assert execution.error_category == "database"
    assert "(reference E-0002)" in execution.customer_message
    assert run_error(execution)["cause_code"] == Code.C0002  # what the API's run detail says
    step = Step.objects.get(execution=execution)
    assert step.status == "error" and len(step.attempts) == 3
    assert clock.sleeps == [2.0, 4.0]
    assert metric("conveyor_step_retries_total", outcome="exhausted") == exhausted + 1
    # The web's /metrics counts it where the outage was.
    text = client.get("/metrics").content.decode()
    by_category = {s.labels["error_category"]: s.value for s in matching(text, "conveyor_system_errors_by_category")}
    assert by_category["database"] == 1 and by_category["workflow_engine"] == 0
