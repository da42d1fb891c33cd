"""The project's collectors, read at scrape time by the web process's /metrics.

``DatabaseCollector`` reads the database over a window on ``finished_at``
(METRICS_WINDOW_S): every query goes through an index (the window through
``exec_finished_status_idx``, in-flight runs through the partial ``exec_in_progress_idx``),
so a scrape costs the same on a table of a million runs as on one of ten thousand
(bench/bench_metrics_scrape.py). Status groups come from ``executions.statuses`` only:
"finished" is ``TERMINAL``, "failed" is ``ERROR_STATUSES`` (error *and* system_error).

``QueueDepthCollector`` reads SQS with a short timeout and caches what it read, so
/metrics answers at once during an SQS outage: it serves the last known depth with its
age and ``conveyor_queue_depth_up 0``.

Database gauges are the same from every web replica: alert rules aggregate them with
``max``, never ``sum``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from executions import queries
from executions.models import Execution
from failures.catalogue import CATALOGUE, SYSTEM_CATEGORIES
from failures.statuses import ERROR_STATUSES, IN_PROGRESS, TERMINAL, ErrorType, ExecutionStatus, status_for_error_type
from incidents.models import Incident, IncidentStatus
from messaging.queue import client as queue_client
from messaging.queue import full_name
from reaper.models import Lease
from reaper.sweep import LEASE_NAME
from tenancy.models import Organization
from workflows.models import Workflow

logger = logging.getLogger("conveyor.metrics")

NO_ERROR_TYPE = "none"  # the error_type label of runs without one (as conveyor_execution_duration_seconds)


def status_error_type_combinations() -> list[tuple[str, str]]:
    """Every (status, error_type) a finished run can carry: each error type with the status
    the single rule gives it, and every other terminal status without an error type."""
    combos = {(status_for_error_type(error_type), error_type) for error_type in ErrorType.values}
    combos |= {(status, NO_ERROR_TYPE) for status in TERMINAL - ERROR_STATUSES}
    return sorted(combos)


def _window_start(now: datetime) -> datetime:
    return now - timedelta(seconds=float(settings.METRICS_WINDOW_S))


def finished_in_window(since: datetime):
    """Runs that reached a terminal status since *since* (exec_finished_status_idx)."""
    return Execution.objects.filter(finished_at__gte=since, status__in=sorted(TERMINAL))


def failed_in_window(since: datetime):
    """Runs that failed (both error statuses) since *since* (exec_finished_status_idx)."""
    return Execution.objects.filter(finished_at__gte=since, status__in=sorted(ERROR_STATUSES))


def counted_by(runs, *fields: str):
    """(*values of fields, count) rows: one GROUP BY query, no ordering."""
    return runs.values_list(*fields).annotate(n=Count("*")).order_by()


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time. A part that fails (the database is
    down) is logged and reported by ``conveyor_metrics_collector_up{part}``; /metrics still
    answers with everything else."""

    def __init__(self, now: Callable[[], datetime] = timezone.now):
        self._now = now

    def parts(self) -> list[tuple[str, Callable[[datetime], Iterable[Metric]]]]:
        return [
            ("executions", self.executions),
            ("system_errors", self.system_errors),
            ("managed_workflows", self.managed_workflows),
            ("in_flight", self.in_flight),
            ("reaper", self.reaper),
            ("incidents", self.incidents),
        ]

    def collect(self) -> Iterator[Metric]:
        now = self._now()
        up = GaugeMetricFamily(
            "conveyor_metrics_collector_up", "1 if the part of the database collector could read", labels=["part"]
        )
        took = GaugeMetricFamily(
            "conveyor_metrics_collector_duration_seconds", "Time the database collector took, by part", labels=["part"]
        )
        for name, part in self.parts():
            started = time.perf_counter()
            try:
                families = list(part(now))
            except Exception:
                logger.exception(
                    "metrics collector part failed", extra={"event": "metrics_collector_failed", "part": name}
                )
                up.add_metric([name], 0)
            else:
                up.add_metric([name], 1)
                yield from families
            took.add_metric([name], time.perf_counter() - started)
        window = GaugeMetricFamily(
            "conveyor_metrics_window_seconds", "Window on finished_at the database gauges count over"
        )
        window.add_metric([], float(settings.METRICS_WINDOW_S))
        threshold = GaugeMetricFamily(
            "conveyor_start_threshold_seconds", "Age at which the reaper gives up on a pending run (P-0005)"
        )
        threshold.add_metric([], float(settings.START_THRESHOLD_S))
        yield from (up, took, window, threshold)

    # -- parts ---------------------------------------------------------------------
    def executions(self, now: datetime) -> Iterator[Metric]:
        counts = dict.fromkeys(status_error_type_combinations(), 0)
        rows = counted_by(finished_in_window(_window_start(now)), "status", "error_type")
        for status, error_type, n in rows:
            key = (status, error_type or NO_ERROR_TYPE)
            counts[key] = counts.get(key, 0) + n
        family = GaugeMetricFamily(
            "conveyor_executions",
            "Runs that finished within the window, by status and error type (system_error always present)",
            labels=["status", "error_type"],
        )
        for (status, error_type), n in sorted(counts.items()):
            family.add_metric([status, error_type], n)
        yield family

    def system_errors(self, now: datetime) -> Iterator[Metric]:
        """System errors by category and code, matching both error statuses: a system
        category is a system failure whichever error status the run ended in."""
        by_code = {code: 0 for code in CATALOGUE}
        by_category = dict.fromkeys(sorted(SYSTEM_CATEGORIES), 0)
        system = failed_in_window(_window_start(now)).filter(error_category__in=sorted(SYSTEM_CATEGORIES))
        rows = counted_by(system, "error_category", "error_code")
        for category, code, n in rows:
            by_category[category] = by_category.get(category, 0) + n
            by_code[code] = by_code.get(code, 0) + n
        categories = GaugeMetricFamily(
            "conveyor_system_errors_by_category",
            "System errors that finished within the window, by category (both error statuses)",
            labels=["error_category"],
        )
        for category, n in sorted(by_category.items()):
            categories.add_metric([category], n)
        codes = GaugeMetricFamily(
            "conveyor_system_errors_by_code",
            "System errors that finished within the window, by catalogue code (both error statuses)",
            labels=["error_code", "error_category"],
        )
        for code, n in sorted(by_code.items()):
            category = CATALOGUE[code].category if code in CATALOGUE else "unknown"
            codes.add_metric([code or "none", category], n)
        yield categories
        yield codes

    def managed_workflows(self, now: datetime) -> Iterator[Metric]:
        """Per-workflow errors, only for the organizations METRICS_MANAGED_ORGS lists (the
        one per-workflow label: cardinality stays bounded by those organizations)."""
        family = GaugeMetricFamily(
            "conveyor_workflow_errors",
            "Failed runs within the window per workflow of a managed organization, by error status",
            labels=["organization", "workflow_id", "workflow", "status"],
        )
        slugs = list(settings.METRICS_MANAGED_ORGS or [])
        if slugs:
            orgs = dict(Organization.objects.filter(slug__in=slugs).values_list("id", "slug"))
            workflows = {
                wf_id: (org_id, name)
                for wf_id, org_id, name in Workflow.objects.filter(
                    organization_id__in=list(orgs), deleted_at__isnull=True
                ).values_list("id", "organization_id", "name")
            }
            counts: dict[tuple[int, str], int] = {}
            managed = failed_in_window(_window_start(now)).filter(organization_id__in=list(orgs))
            rows = counted_by(managed, "workflow_id", "status")
            for wf_id, status, n in rows:
                counts[(wf_id, status)] = n
            missing = {wf_id for wf_id, _ in counts} - set(workflows)
            if missing:  # deleted since: their errors still count
                workflows.update(
                    {
                        wf_id: (org_id, name)
                        for wf_id, org_id, name in Workflow.objects.filter(id__in=missing).values_list(
                            "id", "organization_id", "name"
                        )
                    }
                )
            for wf_id, (org_id, name) in sorted(workflows.items()):
                for status in sorted(ERROR_STATUSES):
                    family.add_metric([orgs[org_id], str(wf_id), name, status], counts.get((wf_id, status), 0))
        yield family

    def in_flight(self, now: datetime) -> Iterator[Metric]:
        counts = dict.fromkeys(sorted(IN_PROGRESS), 0)
        in_progress = Execution.objects.filter(status__in=sorted(IN_PROGRESS))  # exec_in_progress_idx
        for status, n in counted_by(in_progress, "status"):
            counts[status] = n
        family = GaugeMetricFamily("conveyor_in_flight_runs", "Runs not finished yet, by status", labels=["status"])
        for status, n in counts.items():
            family.add_metric([status], n)
        yield family
        oldest = in_progress.filter(status=ExecutionStatus.PENDING).aggregate(oldest=Min("queued_at"))["oldest"]
        age = GaugeMetricFamily(
            "conveyor_oldest_pending_age_seconds",
            "Age of the oldest pending run since it was queued (0 when none is pending)",
        )
        age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield age
        stuck = GaugeMetricFamily(
            "conveyor_stuck_runs",
            "Runs the reaper will age at its next sweep (never received, past their deadline, stale heartbeat)",
        )
        stuck.add_metric([], Execution.objects.filter(queries.stuck(now)).count())
        yield stuck

    def reaper(self, now: datetime) -> Iterator[Metric]:
        last = Lease.objects.filter(name=LEASE_NAME).values_list("last_finished_at", flat=True).first()
        family = GaugeMetricFamily(
            "conveyor_reaper_last_sweep_timestamp_seconds",
            "Unix time the reaper last finished a sweep (0: never)",
        )
        family.add_metric([], last.timestamp() if last else 0.0)
        yield family

    def incidents(self, now: datetime) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "conveyor_open_incidents", "Platform incidents open now (incidents app; incident_status_start_idx)"
        )
        family.add_metric([], Incident.objects.filter(status=IncidentStatus.OPEN).count())
        yield family


# --------------------------------------------------------------------------------------
# queue depth
# --------------------------------------------------------------------------------------


@dataclass
class _QueueReading:
    visible: int = 0
    in_flight: int = 0
    read_at: float | None = None  # time.time() of the last successful read
    ok: bool = False


@dataclass
class _QueueState:
    readings: dict[str, _QueueReading] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    attempted_at: float = float("-inf")  # time.monotonic() of the last refresh attempt


class QueueDepthCache:
    """Depth of each queue, refreshed at most every METRICS_QUEUE_CACHE_S, each SQS call
    bounded by METRICS_QUEUE_TIMEOUT_S with a single attempt. The first failure ends a
    refresh (the endpoint is down: the other queues would only add their timeouts), so a
    scrape during an outage waits at most one timeout, once per cache period."""

    def __init__(self):
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str, str], _QueueState] = {}

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def read(self, queues: list[str]) -> dict[str, _QueueReading]:
        key = (settings.SQS_ENDPOINT_URL, settings.AWS_REGION, settings.QUEUE_PREFIX)
        with self._lock:
            state = self._states.setdefault(key, _QueueState())
            if time.monotonic() - state.attempted_at >= float(settings.METRICS_QUEUE_CACHE_S):
                state.attempted_at = time.monotonic()
                self._refresh(state, queues)
            return {queue: state.readings.get(queue, _QueueReading()) for queue in queues}

    def _refresh(self, state: _QueueState, queues: list[str]) -> None:
        client = queue_client(timeout=float(settings.METRICS_QUEUE_TIMEOUT_S), attempts=1)
        failed = False
        for queue in queues:
            reading = state.readings.setdefault(queue, _QueueReading())
            if failed:
                reading.ok = False
                continue
            try:
                if queue not in state.urls:
                    state.urls[queue] = client.get_queue_url(QueueName=full_name(queue))["QueueUrl"]
                attributes = client.get_queue_attributes(
                    QueueUrl=state.urls[queue],
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
            except Exception as exc:
                failed = True
                reading.ok = False
                logger.warning(
                    "queue depth unavailable: %s",
                    type(exc).__name__,
                    extra={"event": "queue_depth_failed", "queue": queue, "detail": str(exc)[:300]},
                )
            else:
                reading.visible = int(attributes.get("ApproximateNumberOfMessages", 0))
                reading.in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
                reading.read_at = time.time()
                reading.ok = True


QUEUE_DEPTHS = QueueDepthCache()


class QueueDepthCollector(Collector):
    def __init__(self, cache_: QueueDepthCache = QUEUE_DEPTHS):
        self._cache = cache_

    def collect(self) -> Iterator[Metric]:
        queues = list(settings.METRICS_QUEUES or [])
        if not queues:
            return
        readings = self._cache.read(queues)
        depth = GaugeMetricFamily(
            "conveyor_queue_depth", "Visible messages in the queue (last successful read)", labels=["queue"]
        )
        in_flight = GaugeMetricFamily(
            "conveyor_queue_in_flight_messages",
            "Messages received but not deleted yet (last successful read)",
            labels=["queue"],
        )
        age = GaugeMetricFamily(
            "conveyor_queue_depth_age_seconds", "Age of the last successful queue depth read", labels=["queue"]
        )
        up = GaugeMetricFamily(
            "conveyor_queue_depth_up", "1 if the last attempt to read the queue's depth succeeded", labels=["queue"]
        )
        now = time.time()
        for queue, reading in readings.items():
            up.add_metric([queue], 1 if reading.ok else 0)
            if reading.read_at is not None:
                depth.add_metric([queue], reading.visible)
                in_flight.add_metric([queue], reading.in_flight)
                age.add_metric([queue], max(0.0, now - reading.read_at))
        yield from (depth, in_flight, age, up)
