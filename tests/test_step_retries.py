"""Step retries in the engine against a real local endpoint that fails N times, then
succeeds: every attempt recorded, the same Idempotency-Key on each, back-off bounded by
the run's deadline (a fake clock: nothing sleeps for real), and how an exhausted step
ends the run (E-0002 with the cause kept for a system cause, the real message for an
external one)."""

import socket

import pytest

from failures.catalogue import Code
from tests.helpers_http import LoopbackDNS, LoopbackHTTPServer, Reply
from tests.retry_clock import FakeClock
from workflows import retries
from workflows.engine import RunContext, RunFailed, run_definition

EXAMPLES = "workflows.actions.examples"


class Recorder:
    def __init__(self):
        self.finished: dict[str, dict] = {}

    def start_step(self, step_id, action, position):
        return True

    def finish_step(self, step_id, *, status, output, error_type="", error_message="", **extra):
        self.finished[step_id] = {"status": status, "output": output, "error_type": error_type, **extra}


@pytest.fixture(autouse=True)
def settings_for_tests(settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.PYTHON_CALLABLE_ALLOWLIST = [f"{EXAMPLES}.database_unavailable", f"{EXAMPLES}.fail"]


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    resolver = LoopbackDNS()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    yield resolver
    assert resolver.violations == []


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(retries, "CLOCK", fake)
    return fake


@pytest.fixture
def server():
    with LoopbackHTTPServer() as running:
        yield running


def failing_then_ok(failures: int, status: int = 503):
    seen = {"n": 0}

    def reply(request):
        seen["n"] += 1
        if seen["n"] <= failures:
            return Reply(status, {"error": f"try {seen['n']} refused"})
        return Reply(200, {"ok": True})

    return reply


def context(deadline=None, **extra):
    return RunContext(execution_id="run-9", workflow_id=1, organization_id=1, deadline=deadline, **extra)


def http_step(url, retry=None, **extra):
    step = {"id": "call", "action": "http_request", "config": {"url": url, **extra}}
    if retry is not None:
        step["retry"] = retry
    return step


def test_a_step_that_fails_twice_then_succeeds_records_three_attempts_with_one_idempotency_key(server, clock):
    server.route("/flaky", failing_then_ok(2))
    recorder = Recorder()
    policy = {"max_attempts": 5, "backoff": "exponential", "delay_s": 1, "jitter": False}
    out = run_definition({"steps": [http_step(server.url("/flaky"), policy)]}, context(), recorder)

    assert out["result"]["body"] == {"ok": True}
    attempts = recorder.finished["call"]["attempts"]
    assert [a["outcome"] for a in attempts] == ["error", "error", "success"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert attempts[0]["error_type"] == "external" and "503" in attempts[0]["error_message"]
    assert all(a["started_at"] <= a["finished_at"] for a in attempts)
    keys = {seen.headers["idempotency-key"] for seen in server.requests}
    assert keys == {"run-9:call"} and len(server.requests) == 3
    assert clock.sleeps == [1.0, 2.0]  # exponential: 1 s, then 2 s


def test_a_post_sends_the_same_idempotency_key_on_every_attempt(server, clock):
    server.route("/pay", failing_then_ok(1))
    step = http_step(server.url("/pay"), {"max_attempts": 3, "delay_s": 0}, method="POST", json={"amount": 5})
    step["config"]["idempotency_key_honoured"] = True
    run_definition({"steps": [step]}, context(), Recorder())
    assert [s.method for s in server.requests] == ["POST", "POST"]
    assert len({s.headers["idempotency-key"] for s in server.requests}) == 1


def test_back_off_never_sleeps_past_the_deadline(server, clock):
    server.route("/down", Reply(503, "down"))
    recorder = Recorder()
    policy = {"max_attempts": 10, "backoff": "exponential", "delay_s": 2, "jitter": False}
    with pytest.raises(RunFailed) as raised:
        run_definition(
            {"steps": [http_step(server.url("/down"), policy)]}, context(deadline=clock.monotonic() + 5), recorder
        )
    # 0 s: fail, sleep 2; 2 s: fail, the next back-off (4 s) would end at 6 s > 5 s: stop.
    assert clock.sleeps == [2.0]
    assert len(server.requests) == 2
    assert len(recorder.finished["call"]["attempts"]) == 2
    # An external cause keeps its type and the last real message.
    assert raised.value.classification.error_type == "external"
    assert "503" in raised.value.classification.message


def test_an_external_cause_that_exhausts_its_retries_is_an_external_error_with_the_last_message(server, clock):
    server.route("/down", failing_then_ok(5, status=502))
    with pytest.raises(RunFailed) as raised:
        run_definition(
            {"steps": [http_step(server.url("/down"), {"max_attempts": 3, "delay_s": 0})]}, context(), Recorder()
        )
    c = raised.value.classification
    assert (c.error_type, c.code, c.category) == ("external", "", "external_service")
    assert "try 3 refused" in c.message


def test_a_system_cause_that_exhausts_its_retries_is_e0002_keeping_its_own_code_and_category(clock):
    step = {
        "id": "db",
        "action": "python",
        "config": {"callable": f"{EXAMPLES}.database_unavailable"},
        "idempotent": True,
        "retry": {"max_attempts": 3, "backoff": "fixed", "delay_s": 1.5, "jitter": False},
    }
    recorder = Recorder()
    with pytest.raises(RunFailed) as raised:
        run_definition({"steps": [step]}, context(), recorder)
    c = raised.value.classification
    assert c.error_type == "system"
    assert c.code == Code.E0002
    assert c.cause_code == Code.C0002 and c.category == "database"
    assert "3 of 3 attempts" in c.message
    assert clock.sleeps == [1.5, 1.5]
    # The step's own row keeps the cause's classification, attempt by attempt.
    assert [a["error_code"] for a in recorder.finished["db"]["attempts"]] == [Code.C0002] * 3


def test_user_errors_are_not_retried_unless_the_policy_lists_them(clock):
    step = {
        "id": "bug",
        "action": "python",
        "config": {"callable": f"{EXAMPLES}.fail"},
        "idempotent": True,
        "retry": {"max_attempts": 4, "delay_s": 0},
    }
    recorder = Recorder()
    with pytest.raises(RunFailed) as raised:
        run_definition({"steps": [step]}, context(), recorder)
    assert raised.value.classification.error_type == "user"
    assert len(recorder.finished["bug"]["attempts"]) == 1

    step["retry"]["retry_on"] = ["user"]
    recorder = Recorder()
    with pytest.raises(RunFailed):
        run_definition({"steps": [step]}, context(), recorder)
    assert len(recorder.finished["bug"]["attempts"]) == 4


def test_the_workflow_default_applies_to_steps_safe_to_repeat_only(server, clock):
    server.route("/get", failing_then_ok(1))
    server.route("/post", failing_then_ok(1))
    definition = {
        "retry": {"max_attempts": 2, "delay_s": 0},
        "steps": [
            {"id": "read", "action": "http_request", "config": {"url": server.url("/get")}},
            {"id": "write", "action": "http_request", "config": {"url": server.url("/post"), "method": "POST"}},
        ],
    }
    with pytest.raises(RunFailed) as raised:
        run_definition(definition, context(), Recorder())
    # The GET was retried and succeeded; the POST had one attempt.
    assert raised.value.step_id == "write"
    assert server.paths == ["/get", "/get", "/post"]


def test_a_step_without_a_policy_has_one_attempt_and_no_attempt_records(server, clock):
    server.route("/down", Reply(503, "down"))
    recorder = Recorder()
    with pytest.raises(RunFailed):
        run_definition({"steps": [http_step(server.url("/down"))]}, context(), recorder)
    assert len(server.requests) == 1
    assert "attempts" not in recorder.finished["call"]
    assert clock.sleeps == []


def test_jitter_keeps_the_delay_between_half_and_all_of_the_back_off():
    policy = retries.RetryPolicy(max_attempts=5, backoff="exponential", delay_s=4, max_delay_s=10, jitter=True)
    assert retries.backoff_delay(policy, 1, rng=lambda: 0.0) == 2.0
    assert retries.backoff_delay(policy, 1, rng=lambda: 1.0) == 4.0
    assert retries.backoff_delay(policy, 3, rng=lambda: 1.0) == 10.0  # 16 s capped at max_delay_s
