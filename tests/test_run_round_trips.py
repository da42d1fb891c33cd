"""On PostgreSQL a run costs one statement per write from enqueue to success, and no
transaction of its own (issue 11, docs/decisions/0016): the producer's create, the
consumer's read and claim, a start and a finish per step, the terminal write. The
figures before, on main: bench/bench_round_trips.py."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from executions import enqueue as enqueue_module
from executions.models import Execution, Step, Transition
from executions.outputs import run_output
from failures.statuses import TriggerType
from messaging import messages
from pipeline.consume import Outcome, consume
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db(transaction=True)

TWO_STEPS = {
    "steps": [
        {"id": "first", "action": "transform", "config": {"output": {"n": 1}}},
        {"id": "second", "action": "transform", "config": {"output": {"echo": "{{ steps.first.output.n }}"}}},
    ]
}


def test_a_two_step_run_is_eight_statements_and_no_transaction_from_enqueue_to_success(monkeypatch):
    workflow = make_workflow(definition=TWO_STEPS, runtime="inline")
    sent = []
    monkeypatch.setattr(enqueue_module, "publish", lambda run_id, key, **kwargs: sent.append((run_id, key)))
    commits = []
    original_commit = connection._commit
    monkeypatch.setattr(connection, "_commit", lambda: (commits.append(1), original_commit())[1])

    with CaptureQueriesContext(connection) as queries:
        run = enqueue_module.enqueue(workflow, trigger_type=TriggerType.MANUAL, input={}).execution
        assert consume(messages.build(*sent.pop()), hostname="test") == Outcome.CLAIMED

    assert len(queries) == 8, "\n".join(q["sql"][:120] for q in queries.captured_queries)
    assert commits == []
    run = Execution.objects.get(pk=run.pk)
    assert (run.status, run.steps_started, run.steps_succeeded, run_output(run)["result"]) == (
        "success",
        2,
        2,
        {"echo": 1},
    )
    assert run.duration_ms is not None
    assert list(Transition.objects.filter(execution=run).values_list("move", flat=True)) == [
        "create",
        "claim",
        "complete",
    ]
    assert list(Step.objects.filter(execution=run).values_list("step_id", "status")) == [
        ("first", "success"),
        ("second", "success"),
    ]
