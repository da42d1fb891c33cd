"""A re-run whose message cannot be sent raises EnqueueFailed; the new run, linked to the
original, is system_error MS-0001 at once (the code of the manual/API producer)."""

import pytest
from django.utils import timezone

from executions.enqueue import EnqueueFailed
from executions.models import Execution
from executions.rerun import rerun
from failures.statuses import ExecutionStatus
from tests.e2e import moves
from tests.factories import make_execution

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_sqs_cut_during_a_rerun_ends_the_new_run_system_error_ms0001(producer_app, sqs_proxy, sqs_queues):
    original = make_execution(status=ExecutionStatus.SUCCESS, finished_at=timezone.now(), input={"x": 1})
    sqs_proxy.cut()

    with pytest.raises(EnqueueFailed) as failure:
        rerun(original, actor="api:alice")

    child = Execution.objects.get(pk=failure.value.execution.pk)
    assert failure.value.code == "MS-0001"
    assert (child.status, child.error_code, child.rerun_of_id) == ("system_error", "MS-0001", original.pk)
    assert child.dispatch_key == f"rerun:{original.pk}:1" and child.safe_to_rerun
    assert moves(child) == ["create", "fail-before-start"]

    sqs_proxy.restore()
    second = rerun(original, actor="api:alice")
    assert second.dispatch_key == f"rerun:{original.pk}:2" and second.status == "pending"
    assert sqs_queues.wait_for_count("runs", 1, timeout=10) == 1
