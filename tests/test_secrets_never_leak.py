"""Secrets reach the steps that use them and nothing else: not the outputs the engine hands
on, not a step's error message, not the run's failure (DESIGN.md §5)."""

import json
import socket

import pytest

from tests.helpers_http import LoopbackDNS, LoopbackHTTPServer, Reply
from workflows.engine import MASK, RunContext, RunFailed, Scrubber, run_definition

API_KEY = "sk_live_9f8e7d6c5b4a"
SPECIAL = "p@ss word/ü&1"
EXAMPLES = "workflows.actions.examples"


class Recorder:
    def __init__(self):
        self.events = []

    def start_step(self, step_id, action, position):
        return True

    def finish_step(self, step_id, *, status, output, error_type="", error_message=""):
        self.events.append({"step": step_id, "status": status, "output": output, "error": error_message})

    def dump(self) -> str:
        return json.dumps(self.events, ensure_ascii=False)


def context(**overrides):
    values = {
        "execution_id": "run-1",
        "workflow_id": 1,
        "organization_id": 1,
        "input": {},
        "secrets": {"API_KEY": API_KEY, "SPECIAL": SPECIAL, "PIN": "4321"},
    }
    values.update(overrides)
    return RunContext(**values)


def echo(seen):
    """The endpoint echoes what it received: the worst case for a leak."""
    return Reply(200, {"path": seen.path, "headers": seen.headers, "body": seen.body.decode()})


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in (API_KEY, SPECIAL, "p%40ss%20word", "p@ss%20word", "4321"):
            assert secret not in text, f"{secret!r} leaked into {text[:200]!r}"


@pytest.fixture(autouse=True)
def loopback(settings, monkeypatch):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.PYTHON_CALLABLE_ALLOWLIST = [f"{EXAMPLES}.echo", f"{EXAMPLES}.fail", f"{EXAMPLES}.database_unavailable"]
    resolver = LoopbackDNS()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    yield
    assert resolver.violations == []


@pytest.fixture
def server():
    with LoopbackHTTPServer() as running:
        yield running


def test_a_secret_the_endpoint_echoes_back_is_masked_in_outputs_but_was_really_sent(server):
    server.route("*", echo)
    url = server.url("/echo/{{ secrets.SPECIAL }}?key={{ secrets.API_KEY }}")
    definition = {
        "steps": [
            {
                "id": "call",
                "action": "http_request",
                "config": {
                    "method": "POST",
                    "url": url,
                    "headers": {"Authorization": "Bearer {{ secrets.API_KEY }}"},
                    "json": {"pin": "{{ secrets.PIN }}", "special": "{{ secrets.SPECIAL }}"},
                },
            }
        ]
    }
    recorder = Recorder()
    result = run_definition(definition, context(), recorder)
    received = server.requests[0]
    assert received.headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY in received.path
    assert json.loads(received.body) == {"pin": "4321", "special": SPECIAL}
    assert_clean(json.dumps(result, ensure_ascii=False), recorder.dump())
    assert result["result"]["body"]["headers"]["authorization"] == f"Bearer {MASK}"


def test_a_later_step_can_still_use_a_secret_an_earlier_output_carried(server):
    server.route("/echo", echo)
    definition = {
        "steps": [
            {"id": "auth", "action": "transform", "config": {"output": {"header": "Bearer {{ secrets.API_KEY }}"}}},
            {
                "id": "call",
                "action": "http_request",
                "config": {"url": server.url("/echo"), "headers": {"Authorization": "{{ steps.auth.output.header }}"}},
            },
        ]
    }
    recorder = Recorder()
    result = run_definition(definition, context(), recorder)
    assert server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert result["steps"]["auth"] == {"header": f"Bearer {MASK}"}
    assert_clean(json.dumps(result), recorder.dump())


def test_a_secret_in_a_failing_requests_url_is_not_in_any_error_message(server):
    server.route("/fail", lambda seen: Reply(500, f"upstream rejected {seen.path}"))
    definition = {
        "steps": [
            {
                "id": "call",
                "action": "http_request",
                "config": {"url": server.url("/fail?token={{ secrets.API_KEY }}&x={{ secrets.SPECIAL }}")},
            }
        ]
    }
    recorder = Recorder()
    with pytest.raises(RunFailed) as raised:
        run_definition(definition, context(), recorder)
    failure = raised.value
    assert failure.classification.error_type == "external"
    assert "upstream rejected /fail?token=" + MASK in failure.classification.message
    assert_clean(str(failure), failure.classification.message, recorder.dump())


@pytest.mark.parametrize(
    ("step", "error_type"),
    [
        (
            {
                "action": "condition",
                "config": {
                    "left": "{{ secrets.PIN }}",
                    "op": "eq",
                    "right": "0000",
                    "fail_when_false": True,
                    "message": "pin {{ secrets.PIN }} rejected for {{ secrets.API_KEY }}",
                },
            },
            "user",
        ),
        (
            {
                "action": "condition",
                "config": {"left": "{{ secrets.API_KEY }}", "op": "falsy", "fail_when_false": True},
            },
            "user",
        ),
        (
            {
                "action": "python",
                "config": {"callable": f"{EXAMPLES}.fail", "kwargs": {"message": "{{ secrets.API_KEY }}"}},
            },
            "user",
        ),
        (
            {
                "action": "python",
                "config": {
                    "callable": f"{EXAMPLES}.database_unavailable",
                    "kwargs": {"message": "password authentication failed for {{ secrets.SPECIAL }}"},
                },
            },
            "system",
        ),
        ({"action": "transform", "config": {"output": "{{ input.missing }} {{ secrets.API_KEY }}"}}, "user"),
    ],
)
def test_a_failing_step_never_carries_a_secret_in_its_error(step, error_type):
    recorder = Recorder()
    with pytest.raises(RunFailed) as raised:
        run_definition({"steps": [{"id": "s", **step}]}, context(), recorder)
    assert raised.value.classification.error_type == error_type
    assert recorder.events[-1]["status"] == "error"
    assert_clean(str(raised.value), raised.value.classification.message, recorder.dump())


def test_a_numeric_secret_returned_as_a_json_number_is_masked():
    definition = {"steps": [{"id": "t", "action": "transform", "config": {"output": {"n": 4321, "other": 12}}}]}
    result = run_definition(definition, context(), Recorder())
    assert result["result"] == {"n": MASK, "other": 12}


def test_the_scrubber_masks_the_longest_secret_first_and_ignores_empty_ones():
    scrub = Scrubber({"SHORT": "abc", "LONG": "abcdef", "EMPTY": ""})
    assert scrub.text("x abcdef y abc z") == f"x {MASK} y {MASK} z"
    assert scrub.value({"abc": ["abcdef", True, None]}) == {MASK: [MASK, True, None]}
    assert Scrubber({"EMPTY": ""}).text("unchanged") == "unchanged"


def test_json_and_url_escaped_forms_of_a_secret_are_masked():
    scrub = Scrubber({"S": 'he said "hi"/ok'})
    assert MASK in scrub.text(json.dumps({"quote": 'he said "hi"/ok'}))
    assert scrub.text("q=he%20said%20%22hi%22%2Fok") == f"q={MASK}"
