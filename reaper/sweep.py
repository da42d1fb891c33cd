"""The reaper: ages runs the pipeline lost (DESIGN.md §4).

- pending, queued_at past the start threshold → P-0005 (never received)
- running past its deadline → E-0001
- running with a stale heartbeat → P-0001 if no step exists (checked in the same CAS),
  else P-0003 (worker lost)

It scans in batches through the in-progress index, handles each run in its own
try/except, re-reads before acting (the staleness test is part of the CAS itself), and
writes through the transition function. One sweep at a time, through a lease row.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from executions import queries
from executions.models import Execution
from executions.transitions import fail, no_step_started, some_step_started
from failures.catalogue import Code
from failures.classifier import system_fault
from failures.statuses import Actor, ExecutionStatus
from pipeline import metrics as pipeline_metrics
from pipeline.supervision import detection_reference
from reaper import lease, metrics

logger = logging.getLogger("conveyor.reaper")
S = ExecutionStatus
LEASE_NAME = "reaper"
MAX_BATCHES_PER_PASS = 20


@dataclass
class SweepReport:
    acquired: bool = True
    reaped: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    def count(self, code: str) -> None:
        self.reaped[code] = self.reaped.get(code, 0) + 1


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def run_sweep(now: datetime | None = None) -> SweepReport:
    """Take the lease and sweep; a second concurrent caller does nothing."""
    holder = _holder()
    if not lease.acquire(LEASE_NAME, holder, settings.REAPER_LEASE_S):
        metrics.REAPER_SWEEPS.labels(outcome="lease_held").inc()
        return SweepReport(acquired=False)
    try:
        report = sweep(now)
        metrics.REAPER_SWEEPS.labels(outcome="done").inc()
        return report
    finally:
        lease.release(LEASE_NAME, holder)


def sweep(now: datetime | None = None, batch_size: int | None = None) -> SweepReport:
    now = now or timezone.now()
    batch_size = batch_size or settings.REAPER_BATCH_SIZE
    report = SweepReport()
    pending = queries.never_received(now)
    _pass(report, pending, "queued_at", batch_size, lambda pk: _reap_pending(pk, pending, now))

    late = queries.past_deadline(now)
    _pass(report, late, "deadline_at", batch_size, lambda pk: _reap_deadline(pk, late, now))

    stale = queries.stale_heartbeat(now)
    _pass(report, stale, "heartbeat_at", batch_size, lambda pk: _reap_stale(pk, stale, now))
    return report


def _pass(report: SweepReport, where: Q, order: str, batch_size: int, reap) -> None:
    last_seen: list = []
    for _ in range(MAX_BATCHES_PER_PASS):
        ids = list(
            Execution.objects.filter(where)
            .exclude(pk__in=last_seen)
            .order_by(order)
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return
        for pk in ids:
            try:
                code = reap(pk)
                if code:
                    report.count(code)
                    metrics.REAPED.labels(code=code).inc()
            except Exception:
                report.errors += 1
                logger.exception("reaper could not handle a run", extra={"execution_id": str(pk)})
        # Runs that could not be moved (a CAS lost, an error) are not retried this pass.
        last_seen.extend(ids)
        if len(ids) < batch_size:
            return


def _reap(pk, code: str, message: str, *, expected: str, condition: Q, now: datetime) -> str | None:
    """One reaper write: the CAS re-checks `condition` (staleness, no step...) itself."""
    result = fail(
        pk,
        system_fault(code, message, rule="reaper"),
        actor=Actor.REAPER,
        expected=[expected],
        condition=condition,
        now=now,
    )
    if not result.won:
        return None
    pipeline_metrics.observe_detection(code, "reaper", detection_reference(pk), now)
    return code


def _reap_pending(pk, where: Q, now: datetime) -> str | None:
    minutes = settings.START_THRESHOLD_S / 60
    message = f"pending for more than {minutes:g} min: the queue message never reached a worker"
    return _reap(pk, Code.P0005, message, expected=S.PENDING, condition=where, now=now)


def _reap_deadline(pk, where: Q, now: datetime) -> str | None:
    return _reap(pk, Code.E0001, "run passed its deadline", expected=S.RUNNING, condition=where, now=now)


def _reap_stale(pk, where: Q, now: datetime) -> str | None:
    row = Execution.objects.filter(pk=pk).values("heartbeat_at", "worker").first()
    if row is None:
        return None
    detail = f"no heartbeat since {row['heartbeat_at']:%Y-%m-%dT%H:%M:%S%z} (worker {row['worker'] or 'unknown'})"
    no_step = _reap(
        pk, Code.P0001, f"claimed, then lost before its first step: {detail}",
        expected=S.RUNNING, condition=where & no_step_started(), now=now,
    )  # fmt: skip
    return no_step or _reap(
        pk, Code.P0003, f"worker lost: {detail}", expected=S.RUNNING, condition=where & some_step_started(), now=now
    )
