"""A scheduled run whose message cannot be sent ends system_error CS-0001 at once, and
the dispatcher does not make another run for the same fire time."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from prometheus_client import REGISTRY

from executions.models import Execution
from scheduler.schedule import tick
from tests.e2e import moves
from tests.factories import make_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def failures() -> float:
    labels = {"producer": "schedule", "code": "CS-0001"}
    return REGISTRY.get_sample_value("conveyor_enqueue_failures_total", labels) or 0.0


def test_sqs_cut_during_a_tick_ends_the_scheduled_run_system_error_cs0001(producer_app, sqs_proxy, sqs_queues):
    # A fixed clock: the tick sees the 10:00 fire time and nothing else, and the second tick
    # five seconds later cannot cross a minute boundary, whenever the test runs.
    now = datetime(2026, 6, 1, 10, 0, 20, tzinfo=UTC)
    with time_machine.travel(now - timedelta(seconds=30), tick=False):
        workflow = make_workflow(trigger_type="schedule", trigger_config={"cron": "* * * * *"})
    before = failures()
    sqs_proxy.cut()

    report = tick(now)

    assert len(report.failed) == 1 and report.fired == []
    run = Execution.objects.get(workflow=workflow)
    assert run.dispatch_key == report.failed[0]
    assert (run.status, run.error_type, run.error_category, run.error_code) == (
        "system_error",
        "system",
        "infrastructure",
        "CS-0001",
    )
    assert "SendMessage failed" in run.error_message
    assert "could not queue this scheduled run" in run.customer_message and run.safe_to_rerun
    assert moves(run) == ["create", "fail-before-start"]
    assert failures() == before + 1

    sqs_proxy.restore()
    again = tick(now + timedelta(seconds=5))
    assert again.fired == [] and again.failed == []  # the fire time was handled: no second run
    assert Execution.objects.filter(workflow=workflow).count() == 1
    assert sqs_queues.count("runs") == 0
