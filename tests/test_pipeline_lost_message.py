"""A message lost before any worker saw it: the reaper (real beat + maintenance worker)
ages the run to P-0005; if the message turns up after all, the run heals and runs."""

import pytest

from executions.enqueue import enqueue
from tests.e2e import moves, wait_for, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_lost_message_is_reaped_as_system_error_p0005_then_heals_when_it_arrives_late(pipeline, sqs_queues):
    workflow = pipeline.workflow()
    execution = enqueue(workflow, trigger_type="manual").execution
    lost = sqs_queues.drain("runs")
    assert len(lost) == 1  # deleted before any worker saw it

    pipeline.reaper()
    reaped = wait_status(execution.pk, {"system_error"}, timeout=30)
    assert (reaped.error_type, reaped.error_category, reaped.error_code) == ("system", "infrastructure", "P-0005")
    assert "never picked up" in reaped.customer_message and "safe to re-run" in reaped.customer_message
    assert reaped.status_actor == "reaper"
    # The counter moves once the sweep's write returns, just after the row is visible.
    assert wait_for(lambda: pipeline.metric("conveyor_reaped_total", code="P-0005") == 1, timeout=10)

    # The message was only late (a backlog), not lost: it arrives and the run still runs.
    sqs_queues.send_raw("runs", lost[0]["Body"])
    pipeline.worker()
    healed = wait_status(execution.pk, {"success"}, timeout=30)
    assert healed.error_code == ""
    assert moves(healed) == ["create", "fail-before-start", "heal-late-message", "complete"]
    assert pipeline.metric("conveyor_self_heals_total", move="heal-late-message") == 1
