"""An exception inside the consumer is the backstop's: E-0004 at once, and nothing
redelivers the message (it was acknowledged on acceptance)."""

import time

import pytest

from executions.enqueue import enqueue
from executions.models import Transition
from tests.e2e import wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_exception_inside_the_consumer_is_e0004_and_the_message_is_gone(pipeline, sqs_queues):
    pipeline.worker(CONVEYOR_FAULT_INJECTION="consumer")
    execution = enqueue(pipeline.workflow(), trigger_type="manual").execution

    failed = wait_status(execution.pk, {"system_error"}, timeout=30)
    assert (failed.error_type, failed.error_category, failed.error_code) == ("system", "infrastructure", "E-0004")
    assert "could not process" in failed.customer_message and "InjectedFault" not in failed.customer_message
    assert failed.status_actor == "consumer"
    time.sleep(2)
    assert sqs_queues.count("runs") == 0
    assert Transition.objects.filter(execution=failed).count() == 2  # create, then the backstop: no retry
    assert pipeline.metric("conveyor_claims_total", outcome="backstop") == 1


def test_an_unexpected_dispatch_error_is_p0004(pipeline):
    pipeline.worker(CONVEYOR_FAULT_INJECTION="dispatch")
    execution = enqueue(pipeline.workflow(), trigger_type="manual").execution
    failed = wait_status(execution.pk, {"system_error"}, timeout=30)
    assert (failed.error_code, failed.error_category) == ("P-0004", "infrastructure")
