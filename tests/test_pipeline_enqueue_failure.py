"""A producer that cannot send its message resolves the run at once to its own code."""

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from executions.enqueue import EnqueueFailed, enqueue
from executions.models import Execution
from tests.e2e import moves
from tests.factories import make_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _failures(producer: str, code: str) -> float:
    return REGISTRY.get_sample_value("conveyor_enqueue_failures_total", {"producer": producer, "code": code}) or 0.0


def test_sqs_cut_during_enqueue_is_ms0001_and_leaves_nothing_pending(producer_app, sqs_proxy, sqs_queues):
    workflow = make_workflow()
    before = _failures("manual", "MS-0001")
    sqs_proxy.cut()

    with pytest.raises(EnqueueFailed) as failure:
        enqueue(workflow, trigger_type="manual", input={"x": 1})

    execution = Execution.objects.get(pk=failure.value.execution.pk)
    assert (execution.status, execution.error_type, execution.error_category, execution.error_code) == (
        "system_error",
        "system",
        "infrastructure",
        "MS-0001",
    )
    assert "SendMessage failed" in execution.error_message  # the cause, kept internal
    assert "could not queue this run" in execution.customer_message and "safe to re-run" in execution.customer_message
    assert "MS-0001" in failure.value.customer_message
    assert not Execution.objects.filter(status="pending").exists()
    assert moves(execution) == ["create", "fail-before-start"]
    assert _failures("manual", "MS-0001") == before + 1
    sqs_proxy.restore()
    assert sqs_queues.count("runs") == 0


def test_enqueue_inside_a_transaction_sends_only_after_commit(producer_app, sqs_queues):
    workflow = make_workflow()
    with transaction.atomic():
        enqueued = enqueue(workflow, trigger_type="manual")
        assert sqs_queues.count("runs") == 0  # a fast worker would find no row yet
    assert sqs_queues.wait_for_count("runs", 1, timeout=10) == 1
    assert Execution.objects.get(pk=enqueued.execution.pk).status == "pending"


def test_a_duplicate_dispatch_key_creates_nothing_and_returns_the_existing_run(producer_app, sqs_queues):
    workflow = make_workflow()
    first = enqueue(workflow, trigger_type="manual", dispatch_key="manual:abc")
    second = enqueue(workflow, trigger_type="manual", dispatch_key="manual:abc")
    assert first.created and not second.created
    assert second.execution.pk == first.execution.pk
    assert Execution.objects.filter(dispatch_key="manual:abc").count() == 1
    assert sqs_queues.count("runs") == 1


@pytest.mark.timeout(60)
def test_a_producer_with_no_open_connection_fails_fast_during_an_outage(producer_app, sqs_proxy):
    """A producer that must first open its channel (no pooled connection) during an outage
    still answers MS-0001: the transport's retry bound (max_retries) stops kombu's
    channel-opening retries."""
    from tests.harness.processes import _reset_celery_connections

    workflow = make_workflow()
    sqs_proxy.cut()
    _reset_celery_connections(producer_app)
    with pytest.raises(EnqueueFailed) as failure:
        enqueue(workflow, trigger_type="manual")
    assert Execution.objects.get(pk=failure.value.execution.pk).error_code == "MS-0001"
