"""A run longer than the queue's visibility timeout is executed once: the message was
acknowledged when the worker accepted it, so SQS has nothing to deliver again."""

import pytest

from executions.enqueue import enqueue
from executions.models import Step, Transition
from tests.e2e import sleeping, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.mark.sqs_visibility_timeout(2)
def test_a_run_longer_than_the_visibility_timeout_is_executed_once(pipeline, sqs_queues):
    pipeline.worker(concurrency=2)
    execution = enqueue(pipeline.workflow(sleeping(1.5, steps=4)), trigger_type="manual").execution

    finished = wait_status(execution.pk, timeout=40)

    assert finished.status == "success"
    assert Step.objects.filter(execution=finished).count() == 4
    assert Transition.objects.filter(execution=finished, move="claim").count() == 1
    assert pipeline.metric("conveyor_claims_total", outcome="duplicate") == 0
    assert sqs_queues.count("runs") == 0
