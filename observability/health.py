"""The health page's readings (staff only, /admin/health/): the picture an operator opens
first. Every reading is one query through an index, or a small table (decision 0015):

- the SLI over SLO_WINDOW and the error budget left: ``RunHour`` rows (hourly counts per
  status, rolled up by the maintenance worker) for the closed hours, plus the runs that
  finished since the last rolled-up hour, counted live through ``exec_finished_status_idx``;
- system errors per 15 minutes over the last 24 h by category (``exec_finished_status_idx``);
- queue depth (the /metrics cache: short timeout, one attempt) and the oldest pending run
  (the partial ``exec_in_progress_idx``);
- each worker's consumer liveness (``WorkerLiveness``) and the reaper's last sweep (its lease);
- stuck runs (``executions.queries.stuck``, the reaper's own definition);
- open incidents (incidents.queries).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Sum, Window
from django.db.models.functions import TruncHour, TruncMinute
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from executions import queries
from executions.models import Execution
from failures.catalogue import ErrorCategory
from failures.statuses import COUNTED_FOR_SUCCESS_RATE, TERMINAL, ExecutionStatus
from incidents.queries import open_incidents as queries_open_incidents
from messaging.models import WorkerLiveness
from observability.collectors import QUEUE_DEPTHS
from observability.models import RunHour
from reaper.models import Lease
from reaper.sweep import LEASE_NAME

S = ExecutionStatus
HOUR = timedelta(hours=1)
# The objective's window: the same 30 days as the rules' conveyor:slo_errors_per_run:ratio_rate30d.
SLO_WINDOW = timedelta(days=30)
# Closed hours the rollup computes again each time: runs written late into a past hour (a
# reaper sweep after an outage, a heal) are counted within this margin; older hours are frozen.
ROLLUP_RECOMPUTE = timedelta(hours=3)
CHART_SPAN = timedelta(hours=24)
CHART_BUCKET = timedelta(minutes=15)
STUCK_LISTED = 20
INCIDENTS_LISTED = 20


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# --------------------------------------------------------------------------------------
# the rollup (maintenance queue)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollupReport:
    start: datetime | None  # first hour computed (None: nothing to do)
    until: datetime  # the rolled-up hours end here (exclusive)
    hours: int
    pruned: int


def roll_up(now: datetime) -> RollupReport:
    """Count the runs that finished in each closed UTC hour not yet rolled up, and again the
    last ROLLUP_RECOMPUTE of them, per terminal status (zeros included, so the last row's
    hour says how far the rollup goes); delete hours older than the window. Idempotent:
    two overlapping runs write the same rows."""
    until = floor_hour(now)
    latest = RunHour.objects.aggregate(latest=Max("hour"))["latest"]
    window_start = floor_hour(now - SLO_WINDOW)
    start = window_start if latest is None else max(window_start, min(latest + HOUR, until - ROLLUP_RECOMPUTE))
    pruned = 0
    if start >= until:
        return RollupReport(None, until, 0, 0)
    counts: dict[tuple[datetime, str], int] = {}
    rows = (
        Execution.objects.filter(finished_at__gte=start, finished_at__lt=until, status__in=sorted(TERMINAL))
        .annotate(hour=TruncHour("finished_at", tzinfo=UTC))
        .values_list("hour", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    for hour, status, n in rows:
        counts[(hour, status)] = n
    hours = int((until - start) / HOUR)
    objects = [
        RunHour(hour=start + i * HOUR, status=status, runs=counts.get((start + i * HOUR, status), 0))
        for i in range(hours)
        for status in sorted(TERMINAL)
    ]
    with transaction.atomic():
        RunHour.objects.bulk_create(
            objects, update_conflicts=True, unique_fields=["hour", "status"], update_fields=["runs"], batch_size=1000
        )
        pruned, _ = RunHour.objects.filter(hour__lt=window_start - timedelta(days=1)).delete()
    return RollupReport(start, until, hours, pruned)


# --------------------------------------------------------------------------------------
# the SLI and the error budget
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sli:
    since: datetime
    counts: dict[str, int]  # runs per terminal status over the window
    objective: float
    rolled_up_until: datetime | None  # hours before this were read from RunHour

    @property
    def counted(self) -> int:
        return sum(self.counts.get(status, 0) for status in COUNTED_FOR_SUCCESS_RATE)

    @property
    def system_errors(self) -> int:
        return self.counts.get(S.SYSTEM_ERROR, 0)

    @property
    def excluded(self) -> int:
        """Skipped and cancelled runs: counted nowhere in the SLI (nobody asked the platform
        to finish them)."""
        return sum(n for status, n in self.counts.items() if status not in COUNTED_FOR_SUCCESS_RATE)

    @property
    def ratio(self) -> float | None:
        """The share of counted runs that did not end system_error (None: no counted run)."""
        return None if not self.counted else 1 - self.system_errors / self.counted

    @property
    def budget_left(self) -> float | None:
        """1 untouched, 0 spent, below 0 overspent (as conveyor:slo_error_budget_remaining:ratio)."""
        if not self.counted:
            return None
        return 1 - (self.system_errors / self.counted) / (1 - self.objective)

    @property
    def allowed_system_errors(self) -> float:
        return self.counted * (1 - self.objective)


def sli(now: datetime) -> Sli:
    """Runs per terminal status that finished since the start of the hour SLO_WINDOW ago."""
    since = floor_hour(now - SLO_WINDOW)
    counts: dict[str, int] = defaultdict(int)
    # One query for the rolled-up hours and how far they go (every pass writes every status
    # of every hour it covers, zeros included, so each status' latest hour is the same).
    rolled = RunHour.objects.filter(hour__gte=since).values_list("status").annotate(n=Sum("runs"), latest=Max("hour"))
    latest = None
    for status, n, last in rolled.order_by():
        counts[status] += n or 0
        latest = last if latest is None else max(latest, last)
    rolled_up_until = None if latest is None else latest + HOUR
    live_from = rolled_up_until or since
    live = Execution.objects.filter(finished_at__gte=live_from, status__in=sorted(TERMINAL))
    for status, n in live.values_list("status").annotate(n=Count("*")).order_by():
        counts[status] += n
    return Sli(since=since, counts=dict(counts), objective=settings.SLO_OBJECTIVE, rolled_up_until=rolled_up_until)


# --------------------------------------------------------------------------------------
# system errors over the last 24 h
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorChart:
    starts: list[datetime]  # bucket starts, oldest first
    by_category: dict[str, list[int]]  # category -> runs per bucket (only categories seen)

    @property
    def total(self) -> int:
        return sum(sum(values) for values in self.by_category.values())


def bucket_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def system_errors_chart(now: datetime) -> ErrorChart:
    """System errors per CHART_BUCKET over CHART_SPAN ending with the bucket of *now*, by
    category. Grouped by minute in the database (at most 1,440 rows per category), put in
    buckets here: the same code on PostgreSQL and SQLite."""
    end = bucket_start(now) + CHART_BUCKET
    start = end - CHART_SPAN
    n = int(CHART_SPAN / CHART_BUCKET)
    starts = [start + i * CHART_BUCKET for i in range(n)]
    rows = (
        Execution.objects.filter(finished_at__gte=start, finished_at__lt=end, status=S.SYSTEM_ERROR)
        .annotate(minute=TruncMinute("finished_at", tzinfo=UTC))
        .values_list("minute", "error_category")
        .annotate(n=Count("*"))
        .order_by()
    )
    by_category: dict[str, list[int]] = {}
    for minute, category, count in rows:
        index = int((minute - start) / CHART_BUCKET)
        if 0 <= index < n:
            by_category.setdefault(category or "", [0] * n)[index] += count
    ordered = sorted(by_category, key=lambda c: (-sum(by_category[c]), c))
    return ErrorChart(starts=starts, by_category={c: by_category[c] for c in ordered})


def category_label(category: str) -> str:
    if not category:
        return "uncategorised"
    try:
        return str(ErrorCategory(category).label)
    except ValueError:
        return category


# --------------------------------------------------------------------------------------
# queues, workers, the reaper, stuck runs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    name: str
    visible: int | None  # None: never read
    in_flight: int | None
    up: bool
    read_at: datetime | None
    holds_runs: bool  # the runs queue: its pending runs are the database's
    pending: int | None = None
    oldest_pending_at: datetime | None = None
    oldest_pending_id: str | None = None


def queue_rows(now: datetime) -> list[QueueRow]:
    """Depth of every queue /metrics reads (the same cache: SQS is read at most every
    METRICS_QUEUE_CACHE_S, one attempt with METRICS_QUEUE_TIMEOUT_S, so the page never waits
    longer than one timeout on an SQS outage), and for the runs queue its pending runs and
    the oldest of them (the only queue whose messages are runs)."""
    queues = list(settings.METRICS_QUEUES or [])
    readings = QUEUE_DEPTHS.read(queues) if queues else {}
    pending = Execution.objects.filter(status=S.PENDING)  # exec_in_progress_idx
    rows = []
    for name in queues:
        reading = readings[name]
        read_at = datetime.fromtimestamp(reading.read_at, UTC) if reading.read_at else None
        row = QueueRow(
            name=name,
            visible=reading.visible if reading.read_at else None,
            in_flight=reading.in_flight if reading.read_at else None,
            up=reading.ok,
            read_at=read_at,
            holds_runs=name == settings.RUNS_QUEUE,
        )
        if row.holds_runs:
            # One query: the oldest pending run, and how many are pending beside it.
            oldest = (
                pending.annotate(total=Window(Count("*")))
                .order_by(F("queued_at").asc(nulls_last=True))
                .values_list("id", "queued_at", "total")
                .first()
            )
            row = QueueRow(
                **{
                    **row.__dict__,
                    "pending": oldest[2] if oldest else 0,
                    "oldest_pending_id": str(oldest[0]) if oldest and oldest[1] else None,
                    "oldest_pending_at": oldest[1] if oldest else None,
                }
            )
        rows.append(row)
    return rows


@dataclass(frozen=True)
class WorkerRow:
    node: str
    status: str  # as reported: ok, degraded, stalled, stopped
    updated_at: datetime
    reporting: bool  # refreshed within three liveness intervals
    queues: list[tuple[str, dict]]


def workers(now: datetime) -> list[WorkerRow]:
    stale_before = now - timedelta(seconds=3 * float(settings.WORKER_LIVENESS_INTERVAL_S))
    return [
        WorkerRow(
            node=row.node,
            status=row.status,
            updated_at=row.updated_at,
            reporting=row.updated_at >= stale_before,
            queues=[
                (name, _queue_state(state)) for name, state in sorted(((row.details or {}).get("queues") or {}).items())
            ],
        )
        for row in WorkerLiveness.objects.order_by("node")
    ]


def _queue_state(state: dict) -> dict:
    """A queue's entry of a liveness row, its last receive as a datetime (stored as ISO text)."""
    state = dict(state or {})
    raw = state.get("last_receive_at")
    state["last_receive_at"] = parse_datetime(raw) if isinstance(raw, str) else None
    return state


@dataclass(frozen=True)
class ReaperState:
    last_sweep_at: datetime | None
    late: bool  # no sweep finished within three intervals


def reaper(now: datetime) -> ReaperState:
    last = Lease.objects.filter(name=LEASE_NAME).values_list("last_finished_at", flat=True).first()
    late = last is None or now - last > timedelta(seconds=3 * float(settings.REAPER_INTERVAL_S))
    return ReaperState(last_sweep_at=last, late=late)


@dataclass(frozen=True)
class StuckRun:
    id: str
    status: str
    workflow: str
    reason: str
    since: datetime | None


@dataclass(frozen=True)
class Stuck:
    count: int
    runs: list[StuckRun] = field(default_factory=list)


def stuck_runs(now: datetime) -> Stuck:
    """What the reaper will age at its next sweep (the reaper's own query), oldest first:
    one query, the total counted by a window function beside the rows listed."""
    rows = (
        Execution.objects.filter(queries.stuck(now))
        .annotate(total=Window(Count("*")))
        .order_by("queued_at")
        .values_list("id", "status", "workflow__name", "queued_at", "deadline_at", "heartbeat_at", "total")
    )
    found = list(rows[:STUCK_LISTED])
    listed = []
    for run_id, status, workflow, queued_at, deadline_at, heartbeat_at, _ in found:
        if status == S.PENDING:
            reason, since = "never received", queued_at
        elif deadline_at and deadline_at < now:
            reason, since = "past its deadline", deadline_at
        else:
            reason, since = "heartbeat stale", heartbeat_at
        listed.append(StuckRun(str(run_id), status, workflow, reason, since))
    return Stuck(count=found[0][-1] if found else 0, runs=listed)


# --------------------------------------------------------------------------------------
# open incidents
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentRow:
    title: str
    started_at: datetime | None
    url: str


def open_incidents(limit: int = INCIDENTS_LISTED) -> list[IncidentRow]:
    """The open platform incidents, newest first, each linked to its admin page."""
    return [
        IncidentRow(incident.title, incident.start, reverse("admin:incidents_incident_change", args=[incident.pk]))
        for incident in queries_open_incidents(limit=limit)
    ]


# --------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    now: datetime
    sli: Sli
    chart: ErrorChart
    incidents: list[IncidentRow]
    queues: list[QueueRow]
    workers: list[WorkerRow]
    reaper: ReaperState
    stuck: Stuck


def read(now: datetime) -> Health:
    return Health(
        now=now,
        sli=sli(now),
        chart=system_errors_chart(now),
        incidents=open_incidents(),
        queues=queue_rows(now),
        workers=workers(now),
        reaper=reaper(now),
        stuck=stuck_runs(now),
    )
