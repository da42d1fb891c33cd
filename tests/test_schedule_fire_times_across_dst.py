"""Fire times are computed on the workflow's own wall clock: across a daylight-saving
change an hourly job fires every real hour, a daily job at a fixed time fires once."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from executions.models import Execution
from scheduler.schedule import tick
from tests.factories import make_workflow
from workflows.cron import CronSchedule

PARIS = ZoneInfo("Europe/Paris")
# Europe/Paris 2026: clocks go forward at 01:00 UTC on March 29 (02:00 → 03:00 local) and
# back at 01:00 UTC on October 25 (03:00 → 02:00 local).


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def keys(*moments: datetime) -> list[str]:
    return [m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in moments]


def fired(workflow) -> list[str]:
    """Fire times of the workflow's runs, from their dispatch keys schedule:<id>:<fire time>."""
    rows = Execution.objects.filter(workflow=workflow).values_list("dispatch_key", flat=True)
    return sorted(key.split(":", 2)[2] for key in rows)


def run_ticks(start: datetime, end: datetime, every: timedelta) -> None:
    moment = start
    while moment <= end:
        with time_machine.travel(moment, tick=False):
            report = tick()
        assert report.errors == 0
        moment += every


def test_fire_times_across_the_autumn_change_follow_classic_cron():
    hourly = CronSchedule("0 * * * *", PARIS)
    daily = CronSchedule("30 2 * * *", PARIS)
    night = (utc(2026, 10, 24, 21, 59), utc(2026, 10, 25, 3, 0))
    # 23:00, 00:00, 01:00 local in summer time, then 02:00 twice (an hour apart), 03:00, 04:00, 05:00.
    assert hourly.between(*night) == [utc(2026, 10, 24, 22) + timedelta(hours=h) for h in range(6)]
    # 02:30 happens twice on the wall clock; the job runs at the first one only.
    assert daily.between(*night) == [utc(2026, 10, 25, 0, 30)]


def test_fire_times_across_the_spring_change_run_a_skipped_time_once_after_the_gap():
    hourly = CronSchedule("0 * * * *", PARIS)
    daily = CronSchedule("30 2 * * *", PARIS)
    night = (utc(2026, 3, 28, 21, 59), utc(2026, 3, 29, 3, 0))
    # 02:00 local does not exist that night: 01:00 local (00:00 UTC) is followed by 03:00 local (01:00 UTC).
    assert hourly.between(*night) == [utc(2026, 3, 28, 22) + timedelta(hours=h) for h in range(6)]
    # 02:30 does not exist either: the daily job runs once, right after the gap (03:00 local).
    assert daily.between(*night) == [utc(2026, 3, 29, 1, 0)]


def test_the_latest_due_fire_time_counts_a_fire_time_exactly_at_now():
    quarter = CronSchedule("*/15 * * * *", PARIS)
    assert quarter.latest_at_or_before(utc(2026, 6, 1, 10, 15)) == utc(2026, 6, 1, 10, 15)
    assert quarter.latest_at_or_before(utc(2026, 6, 1, 10, 14, 59, 999999)) == utc(2026, 6, 1, 10, 0)
    assert quarter.next_after(utc(2026, 6, 1, 10, 15)) == utc(2026, 6, 1, 10, 30)


@pytest.mark.django_db
def test_ticking_through_the_autumn_night_fires_each_fire_time_once(settings):
    settings.SCHEDULE_CATCHUP_WINDOW_S = 600
    with time_machine.travel(utc(2026, 10, 24, 21, 50), tick=False):
        hourly = make_workflow(
            trigger_type="schedule", trigger_config={"cron": "0 * * * *", "timezone": "Europe/Paris"}
        )
        daily = make_workflow(
            trigger_type="schedule", trigger_config={"cron": "30 2 * * *", "timezone": "Europe/Paris"}
        )

    run_ticks(utc(2026, 10, 24, 21, 51), utc(2026, 10, 25, 3, 10), timedelta(minutes=3, seconds=7))

    expected_hourly = keys(*[utc(2026, 10, 24, 22) + timedelta(hours=h) for h in range(6)])
    assert fired(hourly) == expected_hourly  # both 02:00s: 00:00 and 01:00 UTC
    assert fired(daily) == keys(utc(2026, 10, 25, 0, 30))  # one 02:30
    run = Execution.objects.get(workflow=daily)
    assert run.trigger_type == "schedule" and run.status == "pending"
    assert run.input == {
        "schedule": {
            "fire_time": "2026-10-25T00:30:00Z",
            "local_fire_time": "2026-10-25T02:30:00+02:00",
            "cron": "30 2 * * *",
            "timezone": "Europe/Paris",
        }
    }


@pytest.mark.django_db
def test_ticking_through_the_spring_night_fires_the_skipped_daily_time_once(settings):
    settings.SCHEDULE_CATCHUP_WINDOW_S = 600
    with time_machine.travel(utc(2026, 3, 28, 21, 50), tick=False):
        daily = make_workflow(
            trigger_type="schedule", trigger_config={"cron": "30 2 * * *", "timezone": "Europe/Paris"}
        )

    run_ticks(utc(2026, 3, 28, 21, 51), utc(2026, 3, 29, 3, 10), timedelta(minutes=4, seconds=11))

    assert fired(daily) == keys(utc(2026, 3, 29, 1, 0))
    assert Execution.objects.get(workflow=daily).input["schedule"]["local_fire_time"] == "2026-03-29T03:00:00+02:00"
