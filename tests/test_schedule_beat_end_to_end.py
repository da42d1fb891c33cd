"""End to end: celery beat (its tick interval from settings, shrunk by the environment)
sends the dispatcher's tick to the maintenance queue, the tick enqueues the due fire time,
and a worker runs it to success."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from executions.models import Execution
from tests.e2e import pipeline, wait_for, wait_status  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_beat_fires_a_due_schedule_once_and_a_worker_runs_it(pipeline):  # noqa: F811
    # Created three minutes ago: the current minute's fire time is due at the first tick
    # (a cron minute is too coarse to wait for in a test), and the two before it, which no
    # tick saw, are recorded as missed (CS-0002).
    with time_machine.travel(timezone.now() - timedelta(minutes=3), tick=False):
        workflow = pipeline.workflow(trigger_type="schedule", trigger_config={"cron": "* * * * *", "timezone": "UTC"})
    ticks = {"CONVEYOR_SCHEDULE_TICK_S": "0.5"}
    pipeline.worker(queues="runs,maintenance", **ticks)
    pipeline.processes.start_beat({"PROMETHEUS_MULTIPROC_DIR": str(pipeline.metrics_dir), **ticks})

    runs = Execution.objects.filter(workflow=workflow).exclude(error_code="CS-0002")
    first = wait_for(lambda: runs.order_by("created_at").first(), timeout=30)
    assert first.trigger_type == "schedule" and first.dispatch_key.startswith(f"schedule:{workflow.pk}:")
    done = wait_status(first.pk, timeout=30)
    assert done.status == "success"

    # More ticks come and go: each fire time still has exactly one run.
    wait_for(lambda: pipeline.metric("conveyor_schedule_ticks_total") >= 6, timeout=30)
    keys = list(Execution.objects.filter(workflow=workflow).values_list("dispatch_key", flat=True))
    assert len(keys) == len(set(keys))
    assert 1 <= runs.count() <= 2  # a minute boundary may have passed meanwhile
    missed = Execution.objects.filter(workflow=workflow, error_code="CS-0002")
    assert 2 <= missed.count() <= 3  # 3 when the first tick came just after a minute boundary
    assert {(m.status, m.steps_started) for m in missed} == {("system_error", 0)}
