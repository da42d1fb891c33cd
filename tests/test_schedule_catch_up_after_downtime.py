"""After downtime the dispatcher makes one catch-up run, for the latest missed fire time,
and only if it lies within the catch-up window; never one run per missed fire time, and
never a run for a time before the schedule existed. Every other fire time of the downtime
is recorded as a `system_error` CS-0002 run that did no work, once."""

import pytest
import time_machine
from prometheus_client import REGISTRY

from executions.models import Execution
from tests.clock import tick_at, utc
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db


def fire_times(workflow) -> list[str]:
    """Fire times that were run (not recorded as missed)."""
    rows = (
        Execution.objects.filter(workflow=workflow)
        .exclude(error_code="CS-0002")
        .order_by("created_at")
        .values_list("dispatch_key", flat=True)
    )
    return [key.split(":", 2)[2] for key in rows]


def missed_records(workflow) -> list[tuple[str, str, str]]:
    rows = Execution.objects.filter(workflow=workflow, error_code="CS-0002").order_by("dispatch_key")
    return [(row.dispatch_key.split(":", 2)[2], row.status, row.steps_started) for row in rows]


def missed() -> float:
    return REGISTRY.get_sample_value("conveyor_schedule_fires_total", {"outcome": "missed"}) or 0.0


@pytest.fixture
def hourly(settings):
    settings.SCHEDULE_CATCHUP_WINDOW_S = 1800
    with time_machine.travel(utc(2026, 6, 1, 9, 40), tick=False):
        return make_workflow(trigger_type="schedule", trigger_config={"cron": "0 * * * *"})


def test_one_catch_up_run_for_the_latest_missed_fire_time_within_the_window(hourly):
    assert tick_at(utc(2026, 6, 1, 10, 0, 4)).fired == [f"schedule:{hourly.pk}:2026-06-01T10:00:00Z"]

    # Down from 10:01 to 13:20: 11:00, 12:00 and 13:00 passed; 13:00 is 20 min old.
    report = tick_at(utc(2026, 6, 1, 13, 20))
    assert report.fired == [f"schedule:{hourly.pk}:2026-06-01T13:00:00Z"]
    assert report.missed == 2
    assert tick_at(utc(2026, 6, 1, 13, 25)).fired == []
    assert fire_times(hourly) == ["2026-06-01T10:00:00Z", "2026-06-01T13:00:00Z"]
    assert missed_records(hourly) == [
        ("2026-06-01T11:00:00Z", "system_error", 0),
        ("2026-06-01T12:00:00Z", "system_error", 0),
    ]


def test_a_missed_fire_time_older_than_the_window_makes_no_run(hourly):
    tick_at(utc(2026, 6, 1, 10, 0, 4))
    before = missed()

    # Down until 16:45: the latest fire time, 16:00, is 45 min old, beyond the 30 min window:
    # 11:00 to 16:00 were all missed, none runs.
    report = tick_at(utc(2026, 6, 1, 16, 45))
    assert report.fired == [] and report.missed == 6
    assert missed() == before + 6
    assert tick_at(utc(2026, 6, 1, 16, 50)).missed == 0  # counted once, not at every tick
    assert [key for key, _, _ in missed_records(hourly)] == [f"2026-06-01T{h}:00:00Z" for h in range(11, 17)]

    assert tick_at(utc(2026, 6, 1, 17, 0, 2)).fired == [f"schedule:{hourly.pk}:2026-06-01T17:00:00Z"]
    assert fire_times(hourly) == ["2026-06-01T10:00:00Z", "2026-06-01T17:00:00Z"]


def test_a_new_schedule_never_fires_for_a_time_before_it_was_created(settings):
    settings.SCHEDULE_CATCHUP_WINDOW_S = 1800
    with time_machine.travel(utc(2026, 6, 1, 10, 7), tick=False):
        workflow = make_workflow(trigger_type="schedule", trigger_config={"cron": "0 * * * *"})

    assert tick_at(utc(2026, 6, 1, 10, 8)).fired == []  # 10:00 was before the workflow existed
    assert tick_at(utc(2026, 6, 1, 11, 0, 1)).fired == [f"schedule:{workflow.pk}:2026-06-01T11:00:00Z"]


def test_a_schedule_created_just_before_a_fire_time_fires_even_if_the_first_tick_is_late(settings):
    settings.SCHEDULE_CATCHUP_WINDOW_S = 1800
    with time_machine.travel(utc(2026, 6, 1, 9, 59, 58), tick=False):
        workflow = make_workflow(trigger_type="schedule", trigger_config={"cron": "0 * * * *"})

    assert tick_at(utc(2026, 6, 1, 10, 0, 9)).fired == [f"schedule:{workflow.pk}:2026-06-01T10:00:00Z"]


def test_the_schedule_runs_in_its_own_time_zone(settings):
    settings.SCHEDULE_CATCHUP_WINDOW_S = 1800
    with time_machine.travel(utc(2026, 6, 1, 0, 0), tick=False):
        workflow = make_workflow(
            trigger_type="schedule", trigger_config={"cron": "0 9 * * *", "timezone": "Asia/Kolkata"}
        )

    assert tick_at(utc(2026, 6, 1, 3, 29)).fired == []
    assert tick_at(utc(2026, 6, 1, 3, 30, 1)).fired == [f"schedule:{workflow.pk}:2026-06-01T03:30:00Z"]  # 09:00 IST
