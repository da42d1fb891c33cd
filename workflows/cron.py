"""Fire times of a cron expression in a time zone (croniter + zoneinfo).

Fire times are computed on the zone's wall clock and returned in UTC. Daylight-saving
changes follow classic cron (Vixie cron) semantics:

- spring forward: a fire time that falls in the skipped hour runs once, at the first
  instant after the gap (croniter moves it there);
- fall back: an expression with a fixed hour (`30 2 * * *`) fires once, at the first of
  the two 02:30s; an expression with a wildcard hour (`0 * * * *`, `*/15 * * * *`) fires
  at every real instant, so both 02:00s of an hourly job run (an hour passed between them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from croniter import croniter

# Never scan further than this many fire times for one answer: an expression that only
# yields repeated wall times (impossible in practice) must not loop forever.
_MAX_STEPS = 16

ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    zone: ZoneInfo

    @property
    def timezone_name(self) -> str:
        return self.zone.key

    @cached_property
    def fixed_hour(self) -> bool:
        """True unless the hour field is a wildcard: decides the fall-back rule above."""
        return croniter(self.expression).expanded[1] != ["*"]

    def _skips(self, local: datetime) -> bool:
        # The second of two identical wall times (fold=1 with a different offset) is a
        # repeat for a fixed-hour expression.
        if not self.fixed_hour or local.fold != 1:
            return False
        return local.replace(fold=0).utcoffset() != local.utcoffset()

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The latest fire time <= moment (UTC), or None if none can be found."""
        # croniter's get_prev is strict (< start) and works in whole seconds: start at the
        # next whole second so a fire time exactly at `moment` counts as due.
        start = _aware(moment).astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        iterator = croniter(self.expression, start.astimezone(self.zone))
        for _ in range(_MAX_STEPS):
            try:
                local = iterator.get_prev(datetime)
            except Exception:  # croniter's own CroniterBadDateError for impossible dates
                return None
            if not self._skips(local):
                return local.astimezone(UTC)
        return None

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time > moment (UTC), or None."""
        iterator = croniter(self.expression, _aware(moment).astimezone(self.zone))
        for _ in range(_MAX_STEPS):
            try:
                local = iterator.get_next(datetime)
            except Exception:
                return None
            if not self._skips(local):
                return local.astimezone(UTC)
        return None

    def between(self, start: datetime, end: datetime, limit: int = 1000) -> list[datetime]:
        """Fire times in (start, end], oldest first (for inspection and tests)."""
        found: list[datetime] = []
        cursor = _aware(start)
        while len(found) < limit:
            nxt = self.next_after(cursor)
            if nxt is None or nxt > _aware(end):
                break
            found.append(nxt)
            cursor = nxt
        return found


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("fire times are computed from aware datetimes only")
    return moment


def fire_time_key(fire_at: datetime) -> str:
    """The fire time as it appears in a dispatch key: ISO 8601 UTC, second precision."""
    return fire_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
