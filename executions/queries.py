"""Read-only queries the runs pages and the admin share, each served by an index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone

from executions.models import Execution
from executions.presentation import StatusLook, look
from failures.statuses import ALL_STATUSES

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
