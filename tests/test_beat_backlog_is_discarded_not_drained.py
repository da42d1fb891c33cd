"""Beat's periodic maintenance messages expire when their next one is due: a backlog
left by an outage (here: beat running while no maintenance worker consumes) is discarded
by the worker without running, not drained one by one."""

from __future__ import annotations

import time

import pytest
from celery.schedules import crontab
from django.conf import settings

from tests.e2e import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_every_periodic_entry_expires_when_its_next_one_is_due():
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        schedule = entry["schedule"]
        if isinstance(schedule, crontab):
            # A crontab entry fires once a day or once a week.
            period = 7 * 86400.0 if schedule.day_of_week != set(range(7)) else 86400.0
        else:
            period = float(schedule)
        assert entry["options"]["expires"] == period, name
        assert entry["options"]["queue"] == settings.MAINTENANCE_QUEUE, name


def test_a_backlog_of_expired_sweeps_is_discarded_unrun(pipeline, sqs_queues):
    only_sweeps = {"CONVEYOR_SCHEDULE_TICK_S": "3600", "CONVEYOR_SYSTEM_RETRY_TICK_S": "3600"}
    beat = pipeline.processes.start_beat({"PROMETHEUS_MULTIPROC_DIR": str(pipeline.metrics_dir), **only_sweeps})
    assert wait_for(lambda: sqs_queues.count("maintenance") >= 5, timeout=30)  # a sweep a second piles up
    beat.stop()
    queued = sqs_queues.count("maintenance")
    time.sleep(1.5)  # every one of them is past its expiry (the sweep interval, 1 s)

    worker = pipeline.worker(queues="maintenance", **only_sweeps)
    assert sqs_queues.wait_for_count("maintenance", 0, timeout=30) == 0

    discarded = pipeline.metric("conveyor_expired_tasks_discarded_total")
    assert discarded == queued, worker.log_text()[-3000:]
    assert pipeline.metric("conveyor_reaper_sweeps_total") == 0  # none of them ran
    assert "Discarding revoked task: reaper.tasks.sweep" in worker.log_text()
