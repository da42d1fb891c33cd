"""How a run ends: success, or a failure sorted into user / external / system, with the
step that failed recorded before the run is given up."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import OperationalError

from tests.helpers_http import LoopbackDNS, LoopbackHTTPServer, Reply, closed_port
from workflows.engine import ClaimLost, RunContext, RunFailed, run_definition

EXAMPLES = "workflows.actions.examples"
PROJECT = Path(__file__).resolve().parent.parent


class Recorder:
    """The engine's StepRecorder, in memory: the order of events is what is checked."""

    def __init__(self, refuse_at: str | None = None, fail_start_with: Exception | None = None):
        self.events: list[tuple] = []
        self.refuse_at = refuse_at
        self.fail_start_with = fail_start_with

    def start_step(self, step_id, action, position):
        if self.fail_start_with is not None:
            raise self.fail_start_with
        if step_id == self.refuse_at:
            return False
        self.events.append(("start", step_id, action, position))
        return True

    def finish_step(self, step_id, *, status, output, error_type="", error_message=""):
        self.events.append(("finish", step_id, status, output, error_type, error_message))

    @property
    def statuses(self) -> dict[str, str]:
        return {event[1]: event[2] for event in self.events if event[0] == "finish"}


def context(**overrides) -> RunContext:
    values = {"execution_id": "run-1", "workflow_id": 1, "organization_id": 1, "input": {}, "secrets": {}}
    values.update(overrides)
    return RunContext(**values)


def transform(step_id, output, **extra):
    return {"id": step_id, "action": "transform", "config": {"output": output}, **extra}


def python(step_id, name, **kwargs):
    return {"id": step_id, "action": "python", "config": {"callable": f"{EXAMPLES}.{name}", "kwargs": kwargs}}


def failure_of(definition, ctx=None, recorder=None) -> RunFailed:
    with pytest.raises(RunFailed) as raised:
        run_definition(definition, ctx or context(), recorder or Recorder())
    return raised.value


@pytest.fixture(autouse=True)
def allow_examples(settings):
    settings.PYTHON_CALLABLE_ALLOWLIST = [
        f"{EXAMPLES}.{name}"
        for name in ("add_numbers", "echo", "fail", "read_with_wrong_key", "database_unavailable", "sleep_for")
    ]
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    resolver = LoopbackDNS()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    yield resolver
    assert resolver.violations == []


@pytest.fixture
def server():
    with LoopbackHTTPServer() as running:
        yield running


# --- success and branching ---------------------------------------------------------------
def test_a_successful_run_returns_every_output_and_the_last_as_its_result():
    recorder = Recorder()
    definition = {
        "steps": [python("add", "add_numbers", a=1, b=2), transform("shape", {"n": "{{ steps.add.output.sum }}"})]
    }
    result = run_definition(definition, context(), recorder)
    assert result == {"steps": {"add": {"sum": 3}, "shape": {"n": 3}}, "result": {"n": 3}}
    assert recorder.events == [
        ("start", "add", "python", 0),
        ("finish", "add", "success", {"sum": 3}, "", ""),
        ("start", "shape", "transform", 1),
        ("finish", "shape", "success", {"n": 3}, "", ""),
    ]


def test_each_step_is_recorded_as_started_before_its_action_runs(server):
    recorder = Recorder()
    seen_at_request: list[list] = []

    def hook(seen):
        # What the recorder held when the request reached the endpoint.
        seen_at_request.append(list(recorder.events))
        return Reply(200, "ok")

    server.route("/hook", hook)
    run_definition(
        {"steps": [{"id": "call", "action": "http_request", "config": {"url": server.url("/hook")}}]},
        context(),
        recorder,
    )
    assert seen_at_request == [[("start", "call", "http_request", 0)]]


def branching_definition():
    return {
        "steps": [
            {
                "id": "check",
                "action": "condition",
                "config": {"left": "{{ input.amount }}", "op": "gt", "right": 100, "then": "big", "else": "small"},
            },
            transform("small", "small order", next="done"),
            transform("big", "big order"),
            transform("done", "{{ input.amount }}"),
        ]
    }


def test_a_true_condition_takes_the_then_branch_and_records_the_steps_it_skips():
    recorder = Recorder()
    result = run_definition(branching_definition(), context(input={"amount": 500}), recorder)
    assert list(result["steps"]) == ["check", "big", "done"]
    assert recorder.statuses == {"check": "success", "small": "skipped", "big": "success", "done": "success"}
    assert [e[3] for e in recorder.events if e[0] == "start"] == [0, 1, 2, 3]


def test_a_false_condition_takes_the_else_branch_and_its_next_jump():
    recorder = Recorder()
    result = run_definition(branching_definition(), context(input={"amount": 5}), recorder)
    assert result["steps"] == {"check": {"result": False}, "small": "small order", "done": 5}
    assert recorder.statuses["big"] == "skipped"


def test_a_branch_to_end_ends_the_run_successfully():
    definition = {
        "steps": [
            {"id": "gate", "action": "condition", "config": {"left": "{{ input.go }}", "op": "truthy", "else": "end"}},
            transform("work", "done"),
        ]
    }
    recorder = Recorder()
    result = run_definition(definition, context(input={"go": False}), recorder)
    assert result == {"steps": {"gate": {"result": False}}, "result": {"result": False}}
    assert recorder.statuses == {"gate": "success", "work": "skipped"}
    assert run_definition(definition, context(input={"go": True}), Recorder())["result"] == "done"


# --- user errors --------------------------------------------------------------------------
def test_a_template_that_misses_fails_the_run_as_the_workflows_error_at_that_step():
    recorder = Recorder()
    definition = {"steps": [transform("a", 1), transform("b", "{{ input.customer.email }}"), transform("c", 2)]}
    failed = failure_of(definition, recorder=recorder)
    assert failed.step_id == "b"
    assert (failed.classification.error_type, failed.classification.code) == ("user", "")
    assert "input has no key 'customer'" in failed.classification.message
    assert recorder.events[-1][:5] == ("finish", "b", "error", None, "user")
    assert "c" not in recorder.statuses


def test_a_failing_condition_fails_the_run_as_the_workflows_error():
    definition = {
        "steps": [
            {
                "id": "guard",
                "action": "condition",
                "config": {
                    "left": "{{ input.stock }}",
                    "op": "gte",
                    "right": 1,
                    "fail_when_false": True,
                    "message": "out of stock",
                },
            }
        ]
    }
    failed = failure_of(definition, context(input={"stock": 0}))
    assert (failed.classification.error_type, failed.classification.message) == ("user", "out of stock")
    assert str(failed) == "step 'guard': out of stock"


def test_an_exception_in_an_allow_listed_callable_is_the_workflows_error():
    failed = failure_of({"steps": [python("calc", "fail", message="bad input")]})
    assert failed.classification.error_type == "user"
    assert failed.classification.message == f"{EXAMPLES}.fail raised ValueError: bad input"


def test_a_4xx_from_the_users_endpoint_is_the_workflows_error(server):
    server.route("/orders", Reply(422, {"error": "sku unknown"}))
    failed = failure_of({"steps": [{"id": "post", "action": "http_request", "config": {"url": server.url("/orders")}}]})
    assert failed.classification.error_type == "user"
    assert "answered 422" in failed.classification.message


def test_a_config_that_becomes_unusable_once_rendered_is_the_workflows_error():
    definition = {"steps": [{"id": "call", "action": "http_request", "config": {"url": "{{ input.url }}"}}]}
    failed = failure_of(definition, context(input={"url": "ftp://files.example/x"}))
    assert failed.classification.error_type == "user"
    assert failed.classification.message == "config.url: must be an http(s) URL"


def test_a_definition_that_no_longer_validates_fails_before_any_step_as_the_workflows_error(settings):
    settings.PYTHON_CALLABLE_ALLOWLIST = []
    recorder = Recorder()
    failed = failure_of({"steps": [python("add", "add_numbers", a=1, b=2)]}, recorder=recorder)
    assert failed.classification.error_type == "user"
    assert "steps[0].config.callable" in failed.classification.message
    assert recorder.events == []


# --- external errors ----------------------------------------------------------------------
def test_a_5xx_from_the_users_endpoint_is_an_external_error(server):
    server.route("/api", Reply(502, "bad gateway"))
    recorder = Recorder()
    failed = failure_of(
        {"steps": [{"id": "call", "action": "http_request", "config": {"url": server.url("/api")}}]}, recorder=recorder
    )
    assert (failed.classification.error_type, failed.classification.category) == ("external", "external_service")
    assert recorder.events[-1][:5] == ("finish", "call", "error", None, "external")


def test_a_refused_connection_to_the_users_endpoint_is_an_external_error():
    url = f"http://127.0.0.1:{closed_port()}/"
    failed = failure_of({"steps": [{"id": "call", "action": "http_request", "config": {"url": url}}]})
    assert failed.classification.error_type == "external"
    assert "Connection refused" in failed.classification.message


# --- system errors ------------------------------------------------------------------------
def test_a_secret_store_failure_inside_a_step_is_a_system_error_c0004():
    failed = failure_of({"steps": [python("decrypt", "read_with_wrong_key")]})
    c = failed.classification
    assert (c.error_type, c.category, c.code, c.rule) == ("system", "auth", "C-0004", "secret-store")


def test_a_database_failure_inside_a_step_is_a_system_error_c0002():
    recorder = Recorder()
    failed = failure_of({"steps": [python("lookup", "database_unavailable")]}, recorder=recorder)
    assert (failed.classification.error_type, failed.classification.code) == ("system", "C-0002")
    assert recorder.events[-1][:5] == ("finish", "lookup", "error", None, "system")


def test_a_recorder_that_cannot_reach_the_database_fails_the_run_as_a_system_error():
    recorder = Recorder(fail_start_with=OperationalError("could not connect to server: Connection refused"))
    failed = failure_of({"steps": [transform("a", 1)]}, recorder=recorder)
    assert (failed.classification.error_type, failed.classification.code) == ("system", "C-0002")


def test_an_action_unknown_at_run_time_is_an_engine_fault_before_any_step():
    recorder = Recorder()
    failed = failure_of(
        {"steps": [transform("a", 1), {"id": "b", "action": "teleport", "config": {}}]}, recorder=recorder
    )
    assert (failed.classification.error_type, failed.classification.code) == ("system", "E-0003")
    assert "teleport" in failed.classification.message
    assert recorder.events == []


@pytest.mark.parametrize("definition", [None, [], {"steps": "a"}, {}])
def test_a_corrupted_definition_is_an_engine_fault(definition):
    assert failure_of(definition).classification.code == "E-0003"


def test_a_deadline_that_passes_between_steps_fails_the_run_with_e0001_before_the_next_step():
    recorder = Recorder()
    definition = {"steps": [python("slow", "sleep_for", seconds=0.3), transform("next", 1)]}
    failed = failure_of(definition, context(deadline=time.monotonic() + 0.1), recorder)
    assert (failed.classification.error_type, failed.classification.code) == ("system", "E-0001")
    assert "before step 'next'" in failed.classification.message
    assert recorder.statuses == {"slow": "success"}


def test_a_deadline_already_passed_starts_no_step():
    recorder = Recorder()
    failed = failure_of({"steps": [transform("a", 1)]}, context(deadline=time.monotonic() - 1), recorder)
    assert failed.classification.code == "E-0001"
    assert recorder.events == []


# --- the claim ----------------------------------------------------------------------------
def test_a_lost_claim_stops_the_run_before_the_refused_step_does_anything(server):
    server.route("/charge", Reply(200, "charged"))
    recorder = Recorder(refuse_at="charge")
    definition = {
        "steps": [
            transform("prepare", 1),
            {"id": "charge", "action": "http_request", "config": {"url": server.url("/charge")}},
        ]
    }
    with pytest.raises(ClaimLost):
        run_definition(definition, context(), recorder)
    assert server.requests == []
    assert recorder.statuses == {"prepare": "success"}


# --- the engine needs no database ---------------------------------------------------------
def test_the_engine_runs_without_django_setup_or_a_database_and_never_imports_the_models():
    script = """
import json, sys
from workflows.engine import RunContext, run_definition

class Recorder:
    def start_step(self, *args): return True
    def finish_step(self, *args, **kwargs): pass

definition = {"steps": [
    {"id": "a", "action": "transform", "config": {"output": {"x": "{{ input.x }}"}}},
    {"id": "b", "action": "condition", "config": {"left": "{{ steps.a.output.x }}", "op": "eq", "right": 2}},
]}
result = run_definition(definition, RunContext("r", 1, 1, {"x": 2}, {}), Recorder())
models = ("executions.models", "workflows.models", "tenancy.models")
print(json.dumps({"result": result, "models": any(name in sys.modules for name in models)}))
"""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # A database nobody can reach: touching it would fail the script.
        "DATABASE_URL": f"postgres://nobody@127.0.0.1:{closed_port()}/none",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "result": {"steps": {"a": {"x": 2}, "b": {"result": True}}, "result": {"result": True}},
        "models": False,
    }
