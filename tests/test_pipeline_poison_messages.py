"""Poison messages and forged ones go to the dead-letter queue, are deleted, and never loop."""

import json
import time
import uuid

import pytest

from executions.models import Execution
from messaging import messages
from tests.e2e import wait_for, wait_status
from tests.factories import make_execution

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _dead_letters(sqs_queues) -> list[dict]:
    return sqs_queues.drain("dead-letter")


def test_poison_forged_and_undecodable_messages_are_dead_lettered_once_and_never_loop(
    pipeline,
    producer_app,
    sqs_queues,
):
    pipeline.worker()
    victim = make_execution(runtime="inline")
    forged = messages.build(victim.pk)
    forged["sig"] = "0" * 64
    # 1. not even JSON; 2. a Celery envelope whose body cannot be decoded; 3. a valid
    # Celery task with a forged signature; 4. a wrong schema version.
    sqs_queues.send_raw("runs", "\x00 definitely not a message")
    sqs_queues.send_raw(
        "runs",
        json.dumps(
            {
                "body": "bm90IGpzb24=",
                "content-type": "application/json",
                "content-encoding": "utf-8",
                "headers": {"task": "executions.consume_run", "id": str(uuid.uuid4())},
                "properties": {"body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
            }
        ),
    )
    producer_app.send_task("executions.consume_run", args=[forged], queue="runs")
    producer_app.send_task("executions.consume_run", args=[{**messages.build(victim.pk), "v": 99}], queue="runs")

    assert wait_for(lambda: sqs_queues.count("dead-letter") >= 4, timeout=30)
    time.sleep(3)  # a looping message would come back within the visibility timeout
    letters = _dead_letters(sqs_queues)
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in letters)
    assert len(letters) == 4, reasons
    assert "signature" in reasons and "version" in reasons
    assert sqs_queues.count("runs") == 0
    assert Execution.objects.get(pk=victim.pk).status == "pending"  # a forged message runs nothing
    assert pipeline.metric("conveyor_dead_lettered_total") == 4


def test_the_same_message_delivered_twice_makes_one_run(pipeline, producer_app, sqs_queues):
    from executions.models import Transition

    execution = make_execution(runtime="inline")
    envelope = messages.build(execution.pk)
    producer_app.send_task("executions.consume_run", args=[envelope], queue="runs")
    producer_app.send_task("executions.consume_run", args=[envelope], queue="runs")
    pipeline.worker(concurrency=2)

    assert wait_status(execution.pk).status == "success"
    wait_for(lambda: pipeline.metric("conveyor_claims_total") >= 2, timeout=30)
    assert Transition.objects.filter(execution=execution, move="claim").count() == 1
    assert pipeline.metric("conveyor_claims_total", outcome="claimed") == 1
    assert pipeline.metric("conveyor_claims_total", outcome="duplicate") == 1
