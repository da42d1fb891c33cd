"""Celery signals of the queue side: the consumer's liveness thread lives as long as the
worker's consumer (messaging.liveness); expired periodic messages are counted."""

from __future__ import annotations

from celery.signals import task_revoked, worker_ready, worker_shutting_down

from messaging import liveness
from messaging.metrics import EXPIRED_DISCARDED


@worker_ready.connect(dispatch_uid="messaging.liveness.start")
def _start_liveness(sender=None, **kwargs) -> None:
    liveness.start(getattr(sender, "hostname", "") or "worker")


@worker_shutting_down.connect(dispatch_uid="messaging.liveness.stop")
def _stop_liveness(**kwargs) -> None:
    liveness.stop()


@task_revoked.connect(dispatch_uid="pipeline.expired.count")
def _count_expired(sender=None, request=None, expired=False, **kwargs) -> None:
    """A periodic message that waited past its expiry (beat's backlog after an outage) is
    discarded by the worker without running: counted, so a drained backlog is visible."""
    if expired:
        name = getattr(sender, "name", None) or "unknown"
        EXPIRED_DISCARDED.labels(task=name if name.startswith(_OURS) else "other").inc()


_OURS = ("reaper.", "scheduler.", "observability.", "executions.")
