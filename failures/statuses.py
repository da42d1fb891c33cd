"""Execution statuses and the groups every other module reads.

No other file lists statuses by hand: filters, API validation, metrics, the digest,
wait paths and the UI import these groups (a test walks the code to keep it so).
"""

from __future__ import annotations

from django.db import models


class ExecutionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    ERROR = "error", "Error"
    SYSTEM_ERROR = "system_error", "System Error"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


class ErrorType(models.TextChoices):
    USER = "user", "User"
    EXTERNAL = "external", "External"
    SYSTEM = "system", "System"


class TriggerType(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    BLOCK = "block", "Block"
    EVENT = "event", "Event"
    MANUAL = "manual", "Manual"
    RERUN = "rerun", "Re-run"
    RETRY = "retry", "System-error retry"


class Actor(models.TextChoices):
    PRODUCER = "producer", "Producer"
    CONSUMER = "consumer", "Consumer"
    REAPER = "reaper", "Reaper"
    RUNTIME = "runtime", "Runtime"
    API = "api", "API"
    OPERATOR = "operator", "Operator"


S = ExecutionStatus

IN_PROGRESS: frozenset[str] = frozenset({S.PENDING, S.RUNNING})
TERMINAL: frozenset[str] = frozenset({S.SUCCESS, S.ERROR, S.SYSTEM_ERROR, S.CANCELLED, S.SKIPPED})
ERROR_STATUSES: frozenset[str] = frozenset({S.ERROR, S.SYSTEM_ERROR})
# What the failure digest and success rate count as failed: both error statuses, never
# `error` alone.
FAILED_FOR_DIGEST: frozenset[str] = ERROR_STATUSES
# Runs that count in a success rate's denominator.
COUNTED_FOR_SUCCESS_RATE: frozenset[str] = frozenset({S.SUCCESS}) | ERROR_STATUSES

GROUPS: dict[str, frozenset[str]] = {
    "in_progress": IN_PROGRESS,
    "terminal": TERMINAL,
    "error": ERROR_STATUSES,
    "failed_for_digest": FAILED_FOR_DIGEST,
    "counted_for_success_rate": COUNTED_FOR_SUCCESS_RATE,
}

ALL_STATUSES: tuple[str, ...] = tuple(S.values)


def status_for_error_type(error_type: str) -> str:
    """The single rule: a system failure is `system_error`, everything else `error`."""
    if error_type == ErrorType.SYSTEM:
        return S.SYSTEM_ERROR
    if error_type in (ErrorType.USER, ErrorType.EXTERNAL):
        return S.ERROR
    raise ValueError(f"unknown error type {error_type!r}")


def parse_statuses(raw: str | list[str]) -> list[str]:
    """Parse a comma-separated (or listed) status filter; unknown names raise ValueError
    naming the allowed values, so a filter is never silently ignored."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    statuses = [item.strip() for item in items if item and item.strip()]
    unknown = [s for s in statuses if s not in ALL_STATUSES]
    if unknown:
        raise ValueError(f"unknown status {', '.join(unknown)}; allowed: {', '.join(ALL_STATUSES)}")
    return statuses
