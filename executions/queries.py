"""The queries every reader shares, each served by an index: what the reaper ages (never
received, past the deadline, a stale heartbeat: together "stuck", which the admin's filter
and the in-flight metrics read too), and the status counts and recent runs of the runs
pages and the admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from executions.models import Execution
from executions.presentation import StatusLook, look
from failures.statuses import ALL_STATUSES, IN_PROGRESS, ExecutionStatus

S = ExecutionStatus


# --- what the reaper ages -----------------------------------------------------------------
def never_received(now: datetime) -> Q:
    """Pending past the start threshold: its message never reached a worker (P-0005)."""
    return Q(status=S.PENDING, queued_at__lt=now - timedelta(seconds=settings.START_THRESHOLD_S))


def past_deadline(now: datetime) -> Q:
    """Running past its deadline (E-0001)."""
    return Q(status=S.RUNNING, deadline_at__lt=now)


def stale_heartbeat(now: datetime) -> Q:
    """Running with a heartbeat older than the stale threshold: its supervisor is gone
    (P-0001 if no step started, else P-0003)."""
    return Q(status=S.RUNNING, heartbeat_at__lt=now - timedelta(seconds=settings.STALE_AFTER_S))


def stuck(now: datetime | None = None) -> Q:
    """What the reaper will age at its next sweep. Every branch is in progress, so the
    partial in-progress index serves it."""
    now = now or timezone.now()
    return Q(status__in=sorted(IN_PROGRESS)) & (never_received(now) | past_deadline(now) | stale_heartbeat(now))


# --- the runs pages and the admin ------------------------------------------------------------
RECENT_RUNS = 20
COUNT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class StatusCount:
    status: str
    look: StatusLook
    count: int


def status_counts(runs: QuerySet[Execution], *, window: timedelta = COUNT_WINDOW) -> list[StatusCount]:
    """Runs per status created in the last `window`, every status listed (zeros included).

    `runs` is already narrowed to a workflow or an organization, so the (workflow,
    created_at) or (organization, created_at) index serves the range."""
    since = timezone.now() - window
    rows = runs.filter(created_at__gte=since).order_by().values_list("status").annotate(n=Count("pk"))
    found = dict(rows)
    return [StatusCount(status, look(status), found.get(status, 0)) for status in ALL_STATUSES]


def counts_by_workflow(runs: QuerySet[Execution], *, window: timedelta = COUNT_WINDOW) -> dict[int, dict[str, int]]:
    """{workflow id: {status: runs}} over the last `window` (one grouped query)."""
    since = timezone.now() - window
    result: dict[int, dict[str, int]] = {}
    rows = runs.filter(created_at__gte=since).order_by().values_list("workflow_id", "status").annotate(n=Count("pk"))
    for workflow_id, status, n in rows:
        result.setdefault(workflow_id, {})[status] = n
    return result


def recent_runs(runs: QuerySet[Execution], limit: int = RECENT_RUNS) -> list[Execution]:
    return list(runs.order_by("-created_at", "-pk")[:limit])
