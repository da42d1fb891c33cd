"""A run that finds its workflow at its concurrency limit waits (a delayed SQS copy) and
then runs: never marked, never duplicated."""

import pytest

from executions.enqueue import enqueue
from executions.models import Execution, Transition
from tests.e2e import sleeping, wait_for, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_run_over_the_concurrency_limit_waits_then_succeeds_never_marked_never_duplicated(pipeline):
    pipeline.worker(concurrency=2)
    workflow = pipeline.workflow(sleeping(2.0), concurrency_limit=1)
    first = enqueue(workflow, trigger_type="manual").execution
    wait_status(first.pk, {"running"}, timeout=20)
    second = enqueue(workflow, trigger_type="manual").execution

    wait_for(lambda: pipeline.metric("conveyor_claims_total", outcome="requeued") >= 1, timeout=20)
    assert Execution.objects.get(pk=second.pk).status == "pending"  # waiting, not marked

    assert wait_status(first.pk, timeout=30).status == "success"
    assert wait_status(second.pk, timeout=30).status == "success"
    assert list(Transition.objects.filter(execution=second).values_list("move", flat=True)) == [
        "create",
        "claim",
        "complete",
    ]
    assert Execution.objects.filter(workflow=workflow).count() == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.started_at >= first.finished_at  # never both running at once


def test_the_global_cap_holds_runs_of_other_workflows_back_too(pipeline):
    pipeline.worker(concurrency=2, CONVEYOR_GLOBAL_CONCURRENCY_LIMIT=1)
    slow = enqueue(pipeline.workflow(sleeping(2.0)), trigger_type="manual").execution
    wait_status(slow.pk, {"running"}, timeout=20)
    other = enqueue(pipeline.workflow(sleeping(0.1)), trigger_type="manual").execution

    wait_for(lambda: pipeline.metric("conveyor_claims_total", outcome="requeued") >= 1, timeout=20)
    assert Execution.objects.get(pk=other.pk).status == "pending"

    assert wait_status(other.pk, timeout=30).status == "success"
    slow.refresh_from_db()
    other.refresh_from_db()
    assert other.started_at >= slow.finished_at
