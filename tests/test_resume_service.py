"""Resuming a failed run (executions/resume.py), on PostgreSQL with the consumer and the
inline runtime against a real local endpoint: the steps that succeeded are reused, not
called again; the run starts at the first step that did not succeed and sends the
original run's Idempotency-Key; a non-idempotent step that may have run needs a
confirmation; a definition changed before the resume point is refused naming the step."""

import pytest

from executions.models import Execution, Step, Transition
from executions.resume import ResumeNeedsConfirmation, ResumeRefused, plan, resume
from messaging import messages
from pipeline.consume import Outcome, consume
from tests.factories import make_execution, make_workflow
from tests.helpers_http import LoopbackHTTPServer, Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture(autouse=True)
def sent(monkeypatch):
    """The queue is the e2e tests' (tests/test_resume_e2e.py): here the consumer is called
    in-process with the message the producer would have sent."""
    published: list = []
    monkeypatch.setattr("executions.enqueue.publish", lambda run_id, key: published.append((run_id, key)))
    return published


@pytest.fixture
def server():
    with LoopbackHTTPServer() as running:
        yield running


def _run(execution) -> Execution:
    assert consume(messages.build(execution.id, execution.dispatch_key), hostname="test") == Outcome.CLAIMED
    execution.refresh_from_db()
    return execution


def three_steps(server, *, b_method="GET"):
    return {
        "steps": [
            {"id": "a", "action": "http_request", "config": {"url": server.url("/a")}},
            {"id": "b", "action": "http_request", "config": {"url": server.url("/b"), "method": b_method}},
            {"id": "c", "action": "http_request",
             "config": {"url": server.url("/c"), "json": "{{ steps.a.output.body }}", "method": "PUT"}},
        ]
    }  # fmt: skip


def failed_run(server, failing: str, **kwargs):
    for path in ("/a", "/b", "/c"):
        server.route(path, Reply(200, {"from": path}))
    server.route(f"/{failing}", Reply(503, "down"))
    workflow = make_workflow(definition=three_steps(server, **kwargs), runtime="inline")
    original = _run(make_execution(workflow, runtime="inline"))
    assert original.status == "error"
    for path in ("/a", "/b", "/c"):
        server.route(path, Reply(200, {"from": path}))
    server.requests.clear()
    return original


def test_a_resume_reuses_the_succeeded_steps_and_starts_at_the_failed_one(server):
    original = failed_run(server, "c")
    resumed = resume(original, actor="operator:olga", origin="operator")
    assert (resumed.trigger_type, resumed.rerun_of_id, resumed.resume_step) == ("resume", original.pk, "c")
    assert resumed.dispatch_key == f"resume:{original.pk}:1"
    resumed = _run(resumed)

    assert resumed.status == "success", resumed.error_message
    # Only the failed step was called again, with the original run's key.
    assert server.paths == ["/c"]
    assert server.requests[0].headers["idempotency-key"] == f"{original.pk}:c"
    # A reused output still feeds later templates.
    assert server.requests[0].body == b'{"from": "/a"}'
    rows = {s.step_id: (s.status, s.reused) for s in Step.objects.filter(execution=resumed)}
    assert rows == {"a": ("success", True), "b": ("success", True), "c": ("success", False)}
    create = Transition.objects.get(execution=resumed, move="create")
    assert create.reason == f"resumed from {original.pk} at step c"
    assert resumed.resumed_notice == f"resumed from {original.pk} at step c"


def test_a_non_idempotent_step_that_may_have_run_is_refused_until_confirmed(server):
    original = failed_run(server, "b", b_method="POST")
    with pytest.raises(ResumeNeedsConfirmation) as refused:
        resume(original, actor="api:ann", origin="api")
    assert refused.value.step_id == "b" and "'b'" in str(refused.value)
    assert not Execution.objects.filter(rerun_of=original).exists()

    resumed = _run(resume(original, actor="api:ann", origin="api", confirm_repeat=True))
    assert resumed.status == "success"
    assert server.paths == ["/b", "/c"]
    assert {s.headers["idempotency-key"] for s in server.requests} == {f"{original.pk}:b", f"{original.pk}:c"}


def test_an_idempotent_interrupted_step_needs_no_confirmation(server):
    original = failed_run(server, "b", b_method="GET")
    assert plan(original).needs_confirmation is False
    assert _run(resume(original, actor="op", origin="operator")).status == "success"


def test_a_definition_changed_before_the_resume_point_is_refused_naming_the_first_changed_step(server):
    original = failed_run(server, "c")
    workflow = original.workflow
    definition = three_steps(server)
    definition["steps"][1]["config"]["url"] = server.url("/b2")
    workflow.definition = definition
    workflow.save()
    with pytest.raises(ResumeRefused) as refused:
        resume(original, actor="op", origin="operator")
    assert "step 'b' changed" in str(refused.value)


def test_a_change_at_or_after_the_resume_point_is_allowed(server):
    original = failed_run(server, "b")
    workflow = original.workflow
    definition = three_steps(server)
    definition["steps"][1]["config"]["url"] = server.url("/b-fixed")
    workflow.definition = definition
    workflow.save()
    server.route("/b-fixed", Reply(200, {"fixed": True}))
    resumed = _run(resume(original, actor="op", origin="operator"))
    assert resumed.status == "success" and server.paths == ["/b-fixed", "/c"]


def test_only_a_failed_run_can_be_resumed(server):
    server.route("/a", Reply(200, {}))
    server.route("/b", Reply(200, {}))
    server.route("/c", Reply(200, {}))
    done = _run(make_execution(make_workflow(definition=three_steps(server)), runtime="inline"))
    with pytest.raises(ResumeRefused, match="only a failed run can be resumed"):
        resume(done, actor="op", origin="operator")


def test_a_resume_of_a_resume_still_sends_the_first_runs_keys(server):
    original = failed_run(server, "c")
    server.route("/c", Reply(503, "still down"))
    first = _run(resume(original, actor="op", origin="operator"))
    assert first.status == "error"
    server.route("/c", Reply(200, {}))
    server.requests.clear()
    second = _run(resume(first, actor="op", origin="operator"))
    assert second.status == "success"
    assert server.paths == ["/c"] and server.requests[0].headers["idempotency-key"] == f"{original.pk}:c"
