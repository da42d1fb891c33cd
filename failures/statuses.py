"""Execution statuses and the groups every other module reads.

No other file lists statuses by hand: filters, API validation, metrics, the digest,
wait paths and the UI import these groups (a test walks the code to keep it so).
"""

from __future__ import annotations

from django.db import models

# Labels are Django's (the member's name, title-cased: "System Error") unless given.


class ExecutionStatus(models.TextChoices):
    """A run's status (DESIGN.md §2): pending and running are in progress, the rest final."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"  # the workflow's own fault, or a service it called
    SYSTEM_ERROR = "system_error"  # the platform's fault
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a guard refused it: workflow disabled or deleted


class ErrorType(models.TextChoices):
    """Whose fault a failure was."""

    USER = "user"
    EXTERNAL = "external"
    SYSTEM = "system"


class TriggerType(models.TextChoices):
    """What made a run."""

    SCHEDULE = "schedule"
    BLOCK = "block"
    EVENT = "event"
    MANUAL = "manual"
    RERUN = "rerun", "Re-run"
    RETRY = "retry", "System-error retry"
    RESUME = "resume", "Resume"  # a failed run continued from the step that did not succeed


class Actor(models.TextChoices):
    """Who wrote a status (the transition log keeps it)."""

    PRODUCER = "producer"  # created the run, or could not send its message
    CONSUMER = "consumer"  # claimed it, skipped it, or its backstop failed it
    REAPER = "reaper"  # aged a run the pipeline lost
    RUNTIME = "runtime"  # the supervisor, finishing the run it ran
    HOOK = "hook"  # a worker's main process: Celery reported its pool process lost or a time limit
    API = "api", "API"  # a customer, through the API or the runs pages
    OPERATOR = "operator"  # staff, in the admin


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
