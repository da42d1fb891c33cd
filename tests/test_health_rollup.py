"""The health page's hourly rollup (observability.RunHour), on real rows: the first pass
counts every closed hour of the 30-day window per terminal status (zeros included), the
next ones count the last three closed hours again (a run written late into one of them is
counted; older hours stay as they were), runs in the current hour are left to the live
count, hours past the window are deleted; beat runs it on the maintenance queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings as django_settings

from executions.models import Execution
from failures.statuses import TERMINAL
from failures.statuses import ExecutionStatus as S
from observability import health
from observability.models import RunHour
from observability.tasks import roll_up_run_hours
from tests.clock import utc
from tests.factories import make_execution, make_workflow

pytestmark = pytest.mark.django_db

NOW = utc(2030, 1, 10, 12, 7, 30)


def runs(hour, status: str) -> int:
    row = RunHour.objects.filter(hour=hour, status=status).first()
    return -1 if row is None else row.runs


def test_the_first_pass_counts_every_closed_hour_of_the_window_per_status():
    workflow = make_workflow()
    for at, status in [
        (utc(2030, 1, 10, 11, 59), S.SUCCESS),
        (utc(2030, 1, 10, 11, 0), S.SUCCESS),
        (utc(2030, 1, 10, 11, 30), S.SYSTEM_ERROR),
        (utc(2030, 1, 2, 3, 4), S.CANCELLED),
        (utc(2030, 1, 10, 12, 1), S.SUCCESS),  # the current hour: not rolled up
        (utc(2029, 12, 1, 0, 0), S.SUCCESS),  # before the window
    ]:
        make_execution(workflow, status=status, finished_at=at)

    with time_machine.travel(NOW, tick=False):
        result = roll_up_run_hours.run()  # the task's body (its base class' hooks are the pipeline's)

    assert result["hours"] == 30 * 24
    assert RunHour.objects.count() == 30 * 24 * len(TERMINAL)
    assert runs(utc(2030, 1, 10, 11), S.SUCCESS) == 2
    assert runs(utc(2030, 1, 10, 11), S.SYSTEM_ERROR) == 1
    assert runs(utc(2030, 1, 10, 11), S.ERROR) == 0
    assert runs(utc(2030, 1, 2, 3), S.CANCELLED) == 1
    assert runs(utc(2030, 1, 10, 12), S.SUCCESS) == -1
    assert not RunHour.objects.filter(hour__lt=utc(2029, 12, 11, 12)).exists()


def test_later_passes_count_the_last_three_closed_hours_again_and_leave_older_ones():
    workflow = make_workflow()
    with time_machine.travel(NOW, tick=False):
        health.roll_up(NOW)
    make_execution(workflow, status=S.SYSTEM_ERROR, finished_at=utc(2030, 1, 10, 10, 15))
    make_execution(workflow, status=S.SYSTEM_ERROR, finished_at=utc(2030, 1, 10, 7, 15))
    healed = make_execution(workflow, status=S.SYSTEM_ERROR, finished_at=utc(2030, 1, 10, 12, 5))

    later = NOW + timedelta(hours=1)  # 13:07: hours 10, 11 and 12 are counted again
    health.roll_up(later)

    assert runs(utc(2030, 1, 10, 10), S.SYSTEM_ERROR) == 1
    assert runs(utc(2030, 1, 10, 12), S.SYSTEM_ERROR) == 1
    assert runs(utc(2030, 1, 10, 7), S.SYSTEM_ERROR) == 0  # older than three hours: as rolled up then

    # A heal moves a run from system_error to success in its hour; counted again, it moves.
    Execution.objects.filter(pk=healed.pk).update(status=S.SUCCESS)
    report = health.roll_up(later)
    assert report.hours == 3
    assert runs(utc(2030, 1, 10, 12), S.SYSTEM_ERROR) == 0
    assert runs(utc(2030, 1, 10, 12), S.SUCCESS) == 1
    assert RunHour.objects.filter(hour=utc(2030, 1, 10, 12)).count() == len(TERMINAL)


def test_hours_older_than_the_window_and_a_day_are_deleted():
    with time_machine.travel(NOW, tick=False):
        health.roll_up(NOW)
    much_later = NOW + timedelta(days=3)

    report = health.roll_up(much_later)

    oldest = RunHour.objects.order_by("hour").values_list("hour", flat=True).first()
    assert oldest == health.floor_hour(much_later - health.SLO_WINDOW - timedelta(days=1))
    assert report.pruned > 0


def test_beat_rolls_up_on_the_maintenance_queue():
    entry = django_settings.CELERY_BEAT_SCHEDULE["health-rollup"]

    assert entry["task"] == roll_up_run_hours.name
    assert entry["options"]["queue"] == django_settings.MAINTENANCE_QUEUE
    assert entry["schedule"] == django_settings.HEALTH_ROLLUP_INTERVAL_S
