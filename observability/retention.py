"""Retention: finished runs (``TERMINAL``) older than RETENTION_DAYS go, with their steps
and transition log, in small batches.

Each batch is its own short transaction: it locks at most RETENTION_BATCH_SIZE runs
(``FOR UPDATE SKIP LOCKED``, so two purges never wait on each other and a run someone is
touching is left for the next pass), deletes their transitions and steps in bulk (the
transition log refuses ``.delete()`` on an instance; a queryset delete is the retention
path), then the runs. A pass stops after RETENTION_MAX_BATCHES; the next one goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from executions.models import Execution, Step, Transition
from failures.statuses import TERMINAL
from observability.metrics import RETENTION_DELETED

logger = logging.getLogger("conveyor.retention")


@dataclass
class PurgeReport:
    horizon: datetime
    batches: int = 0
    executions: int = 0
    steps: int = 0
    transitions: int = 0
    more: bool = False  # stopped at the batch limit with expired runs left


def horizon(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=float(settings.RETENTION_DAYS))


def expired(before: datetime) -> Q:
    """What retention may delete: finished runs (TERMINAL) that finished before *before*."""
    return Q(status__in=sorted(TERMINAL), finished_at__lt=before)


def purge_expired(
    now: datetime | None = None, *, batch_size: int | None = None, max_batches: int | None = None
) -> PurgeReport:
    report = PurgeReport(horizon=horizon(now))
    batch_size = int(batch_size or settings.RETENTION_BATCH_SIZE)
    max_batches = int(max_batches or settings.RETENTION_MAX_BATCHES)
    candidates = Execution.objects.filter(expired(report.horizon))
    while True:
        if report.batches >= max_batches:
            report.more = candidates.exists()
            break
        with transaction.atomic():
            ids = list(
                candidates.select_for_update(skip_locked=True)
                .order_by("finished_at")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            transitions, _ = Transition.objects.filter(execution_id__in=ids).delete()
            steps, _ = Step.objects.filter(execution_id__in=ids).delete()
            _, per_model = Execution.objects.filter(pk__in=ids).delete()
            executions = per_model.get(Execution._meta.label, 0)
        report.batches += 1
        report.executions += executions
        report.steps += steps
        report.transitions += transitions
        RETENTION_DELETED.labels(table="executions").inc(executions)
        RETENTION_DELETED.labels(table="steps").inc(steps)
        RETENTION_DELETED.labels(table="transitions").inc(transitions)
    logger.info(
        "retention removed %s runs finished before %s",
        report.executions,
        report.horizon.isoformat(),
        extra={
            "event": "retention",
            "horizon": report.horizon.isoformat(),
            "batches": report.batches,
            "executions": report.executions,
            "steps": report.steps,
            "transitions": report.transitions,
            "more": report.more,
        },
    )
    return report
