"""Shared pieces of the incident tests: runs failed the way the platform fails them
(through executions.transitions, at a moment the test chooses) and a detector pass at a
moment (time-machine: no test depends on the wall clock)."""

from __future__ import annotations

from datetime import datetime, timedelta

import time_machine

from executions.models import Execution
from executions.transitions import fail
from failures.catalogue import Code
from failures.classifier import system_fault
from failures.statuses import Actor, ExecutionStatus
from incidents.detection import DetectionReport, run_detection
from tests.factories import make_execution


def system_error_at(workflow, when: datetime, code: str = Code.P0005, **fields) -> Execution:
    """A run created a little before `when` and failed at `when` with `code`."""
    created = when - timedelta(seconds=fields.pop("age_s", 30))
    run = make_execution(workflow, status=ExecutionStatus.PENDING, created_at=created, queued_at=created, **fields)
    with time_machine.travel(when, tick=False):
        result = fail(
            run.pk, system_fault(code, f"test: {code}"), actor=Actor.REAPER, expected=[ExecutionStatus.PENDING]
        )
    assert result.won
    run.refresh_from_db()
    return run


def errors_every(workflow, start: datetime, n: int, every_s: float, code: str = Code.P0005) -> list[Execution]:
    return [system_error_at(workflow, start + timedelta(seconds=i * every_s), code) for i in range(n)]


def detect_at(moment: datetime) -> DetectionReport:
    with time_machine.travel(moment, tick=False):
        return run_detection()
