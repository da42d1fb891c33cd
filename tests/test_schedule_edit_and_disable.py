"""Editing, disabling or deleting a schedule takes effect at the next tick, with nothing
to restart; a re-enabled schedule does not replay what it missed while it was off."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.utils import timezone

from executions.models import Execution
from scheduler.models import ScheduleState
from scheduler.schedule import tick
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def tick_at(moment: datetime) -> list[str]:
    with time_machine.travel(moment, tick=False):
        return [key.split(":", 2)[2] for key in tick().fired]


def save_at(moment: datetime, workflow, **changes) -> None:
    with time_machine.travel(moment, tick=False):
        for name, value in changes.items():
            setattr(workflow, name, value)
        workflow.save()


@pytest.fixture
def workflow(settings):
    settings.SCHEDULE_CATCHUP_WINDOW_S = 3600
    with time_machine.travel(utc(2026, 6, 1, 9, 50), tick=False):
        return make_workflow(trigger_type="schedule", trigger_config={"cron": "0 * * * *"})


def test_an_edited_cron_expression_applies_from_the_next_tick(workflow):
    assert tick_at(utc(2026, 6, 1, 10, 0, 1)) == ["2026-06-01T10:00:00Z"]

    save_at(utc(2026, 6, 1, 10, 10), workflow, trigger_config={"cron": "30 * * * *"})
    assert tick_at(utc(2026, 6, 1, 10, 11)) == []  # 10:00 of the new expression is before the edit
    assert tick_at(utc(2026, 6, 1, 10, 30, 1)) == ["2026-06-01T10:30:00Z"]
    assert tick_at(utc(2026, 6, 1, 11, 0, 1)) == []  # the old expression is gone
    assert ScheduleState.objects.get(workflow=workflow).fingerprint == "30 * * * *|UTC"


def test_an_edited_time_zone_applies_from_the_next_tick(workflow):
    save_at(utc(2026, 6, 1, 9, 55), workflow, trigger_config={"cron": "0 12 * * *", "timezone": "Europe/Paris"})
    assert tick_at(utc(2026, 6, 1, 10, 0, 1)) == ["2026-06-01T10:00:00Z"]  # noon in Paris (UTC+2)
    assert tick_at(utc(2026, 6, 1, 12, 0, 1)) == []


def test_a_disabled_schedule_stops_and_does_not_replay_when_enabled_again(workflow):
    assert tick_at(utc(2026, 6, 1, 10, 0, 1)) == ["2026-06-01T10:00:00Z"]
    save_at(utc(2026, 6, 1, 10, 20), workflow, enabled=False)
    assert tick_at(utc(2026, 6, 1, 11, 0, 1)) == []
    assert not ScheduleState.objects.get(workflow=workflow).active

    save_at(utc(2026, 6, 1, 11, 10), workflow, enabled=True)
    assert tick_at(utc(2026, 6, 1, 11, 11)) == []  # 11:00 passed while it was disabled
    assert tick_at(utc(2026, 6, 1, 12, 0, 1)) == ["2026-06-01T12:00:00Z"]


def test_a_deleted_schedule_makes_no_more_runs(workflow):
    assert tick_at(utc(2026, 6, 1, 10, 0, 1)) == ["2026-06-01T10:00:00Z"]
    save_at(utc(2026, 6, 1, 10, 20), workflow, deleted_at=timezone.now())
    assert tick_at(utc(2026, 6, 1, 11, 0, 1)) == []
    assert Execution.objects.filter(workflow=workflow).count() == 1


def test_a_workflow_that_stops_being_a_schedule_makes_no_more_runs(workflow):
    save_at(utc(2026, 6, 1, 9, 55), workflow, trigger_type="manual", trigger_config={})
    assert tick_at(utc(2026, 6, 1, 10, 0, 1)) == []
