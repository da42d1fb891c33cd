"""End to end: a run whose queue message was lost is aged to P-0005 by the reaper, the
retry policy's beat task retries it after its back-off, a worker runs the retry to
success, and the original never heals when its lost message turns up late."""

import pytest

from executions.enqueue import enqueue
from executions.models import Execution
from tests.e2e import moves, pipeline, wait_for, wait_status  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_lost_message_is_retried_by_the_policy_and_the_retry_succeeds(pipeline, sqs_queues):  # noqa: F811
    workflow = pipeline.workflow(system_retry_max_attempts=1, system_retry_backoff_seconds=1)
    original = enqueue(workflow, trigger_type="manual", input={"n": 1}).execution
    lost = sqs_queues.drain("runs")
    assert len(lost) == 1

    env = {"CONVEYOR_SYSTEM_RETRY_TICK_S": "0.5"}
    pipeline.worker(queues="runs,maintenance", **env)
    pipeline.processes.start_beat({"PROMETHEUS_MULTIPROC_DIR": str(pipeline.metrics_dir), **env})

    reaped = wait_status(original.pk, {"system_error"}, timeout=30)
    assert reaped.error_code == "P-0005"
    retry = wait_for(lambda: Execution.objects.filter(rerun_of=original).first(), timeout=30)
    assert (retry.trigger_type, retry.attempt, retry.dispatch_key) == ("retry", 2, f"retry:{original.pk}:2")
    assert retry.created_at >= reaped.finished_at
    assert wait_status(retry.pk, timeout=30).status == "success"
    assert pipeline.metric("conveyor_system_retries_total", code="P-0005") == 1

    # The lost message arrives after all: the original was retried, so it must not run too.
    sqs_queues.send_raw("runs", lost[0]["Body"])
    wait_for(lambda: pipeline.metric("conveyor_claims_total", outcome="duplicate") >= 1, timeout=30)
    original.refresh_from_db()
    assert (original.status, original.error_code) == ("system_error", "P-0005")
    assert moves(original) == ["create", "fail-before-start"]
    assert Execution.objects.filter(workflow=workflow).count() == 2
