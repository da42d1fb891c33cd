"""A clock for the step-retry loop (workflows.retries.CLOCK) that never sleeps: a sleep
moves its monotonic time and its wall time forward and is recorded."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from workflows.retries import Clock


class FakeClock(Clock):
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.offset = 0.0
        self.sleeps: list[float] = []
        self.wall = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.start + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds

    def now(self) -> datetime:
        return self.wall + timedelta(seconds=self.offset)
