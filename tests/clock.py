"""Time in the schedule tests: fixed UTC moments, and a dispatcher tick at one of them
(time-machine: no test depends on the wall clock)."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine

from scheduler.schedule import TickReport, tick


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def tick_at(moment: datetime) -> TickReport:
    with time_machine.travel(moment, tick=False):
        return tick()
