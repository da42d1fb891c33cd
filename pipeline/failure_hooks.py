"""Celery's failure hooks: a run whose task Celery saw fail is written at once
(docs/decisions/0009-failure-hooks.md).

Celery reports what happens around a task in two kinds of process:

- the worker's **main process**, when the pool process running a task dies (a signal, the
  kernel's OOM killer): `WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)
  Job: 0.")` through the request's failure handler and the `task_failure` signal, within
  milliseconds of the death (the pool watches each process's sentinel); and when Celery's
  hard time limit fires (`TimeLimitExceeded`, before the pool process is terminated);
- the **pool process**, for an exception that leaves the task body or Celery's tracer
  (`Task.on_failure`, `task_failure`, `task_internal_error`). The consumer records every
  exception of its own (its backstop), so this is the last resort there.

Every report goes through `record_task_failure`: the one classifier names the code
(`WorkerLostError` P-0003, P-0001 when no step had started; a time limit E-0001; anything
else its rule) and the one status writer records it, actor `hook`, under the move table's
`fail` move, only while the run is still held by the claim of the pool process that ran the
task: its `worker` column names that process (`<node> pid=<pid>`, written with the claim by
pipeline.consume) and its claim token is the one read with it, both in the CAS. A run that
moved on (re-claimed by another worker after a redelivery, healed, finished) is never
touched; a lost CAS is counted as every other (conveyor_transition_conflicts_total).

The main process learns which pool process ran a task from its Request: `on_accepted`
gives the pid, kept per task id by `ConveyorRequest` until the task ends.

What no hook sees stays the reaper's: the whole worker killed, a host lost, a frozen
process, a pool process that died before its claim committed (the run is still pending:
the reaper's P-0005 after the start threshold; its message was acknowledged on acceptance).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from celery import signals
from celery.worker.request import Request
from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from executions.models import Execution, Step
from executions.transitions import fail, no_step_started, some_step_started
from failures.catalogue import Code
from failures.classifier import ORIGIN_PLATFORM, Classification, classify, system_fault
from failures.statuses import Actor, ExecutionStatus
from messaging import messages
from messaging.messages import CONSUME_TASK
from pipeline import metrics
from pipeline.supervision import with_db_retry

logger = logging.getLogger("conveyor.failure_hooks")
S = ExecutionStatus
WORKER_LOST_RULE = "worker-lost"
_REMEMBERED = 10_000  # task ids kept per process: far more than a pool runs at once


class Outcome(StrEnum):
    WRITTEN = "written"  # the run's system error is recorded
    LOST = "lost"  # the CAS lost: the run moved on between the read and the write
    NOT_OURS = "not_ours"  # another claim holds the run, or it is finished: untouched
    UNCLAIMED = "unclaimed"  # the task's process never claimed the run: the reaper's
    NO_RUN = "no_run"  # the task's arguments name no run, or the run is gone
    DUPLICATE = "duplicate"  # Celery reported the same failure twice (on_failure and signal)
    DISABLED = "disabled"  # CONVEYOR_FAILURE_HOOKS=0
    FAILED = "failed"  # the hook could not write (database down): the reaper's


def claim_holder(hostname: str, pid: int) -> str:
    """The `worker` column a claim writes (pipeline.consume): `<node name> pid=<pool pid>`,
    to which the isolated runtime appends ` runtime=<child pid>`."""
    return f"{hostname} pid={pid}"


def _held_by(holder: str) -> Q:
    return Q(worker=holder) | Q(worker__startswith=f"{holder} ")


class _Ledger:
    """Per process: which pool process each accepted task went to (main process), and
    which task failures were handled already (Celery reports a hard time limit through
    the request's failure handler and again through its timeout handler)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self.handled: OrderedDict[str, None] = OrderedDict()

    def accept(self, task_id: str, hostname: str, pid: int) -> None:
        with self.lock:
            self.accepted[task_id] = (hostname, pid)
            while len(self.accepted) > _REMEMBERED:
                self.accepted.popitem(last=False)

    def forget(self, task_id: str) -> None:
        with self.lock:
            self.accepted.pop(task_id, None)

    def pool_process(self, task_id: str) -> tuple[str, int] | None:
        with self.lock:
            return self.accepted.get(task_id)

    def first_report(self, task_id: str) -> bool:
        with self.lock:
            if task_id in self.handled:
                return False
            self.handled[task_id] = None
            while len(self.handled) > _REMEMBERED:
                self.handled.popitem(last=False)
            return True


_ledger = _Ledger()


class ConveyorRequest(Request):
    """The run task's request in the worker's main process: remembers the pool process
    each task was accepted by, so a failure reported later names the claim it held."""

    def on_accepted(self, pid, time_accepted):
        if self.id:
            _ledger.accept(self.id, self.hostname or "", int(pid))
        return super().on_accepted(pid, time_accepted)

    def on_success(self, failed__retval__runtime, **kwargs):
        try:
            return super().on_success(failed__retval__runtime, **kwargs)
        finally:
            _ledger.forget(self.id)

    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        try:
            return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        finally:
            _ledger.forget(self.id)


def _run_id(args: Sequence[Any] | None) -> uuid.UUID | None:
    if not args:
        return None
    try:
        return messages.verify(args[0]).execution_id
    except messages.InvalidMessage:
        return None  # the consumer dead-letters such a message; there is no run to write


def record_task_failure(
    exc: BaseException,
    *,
    task_id: str,
    args: Sequence[Any] | None,
    hostname: str,
    pool_pid: int | None,
    now: datetime | None = None,
) -> Outcome:
    """Write the system error of the run task `task_id` that Celery reported failed with
    `exc`, if the pool process `pool_pid` of worker `hostname` still holds its claim."""
    classification = classify(exc, ORIGIN_PLATFORM)
    if not settings.FAILURE_HOOKS:
        return Outcome.DISABLED
    if not _ledger.first_report(task_id):
        return Outcome.DUPLICATE
    run_id = _run_id(args)
    extra = {"event": "failure_hook", "task_id": task_id, "rule": classification.rule, "pool_pid": pool_pid}
    if run_id is None:
        outcome = Outcome.NO_RUN
    elif pool_pid is None:
        outcome = Outcome.UNCLAIMED  # accepted by no pool process: nothing ran
    else:
        try:
            outcome = with_db_retry(_write, run_id, classification, claim_holder(hostname, pool_pid), now)
        except Exception:
            logger.exception("failure hook could not write", extra={**extra, "execution_id": str(run_id)})
            outcome = Outcome.FAILED
        finally:
            # The main process forks new pool processes: it keeps no connection between
            # two (rare) failures.
            connection.close()
    metrics.FAILURE_HOOKS.labels(rule=classification.rule, outcome=outcome.value).inc()
    logger.log(
        logging.WARNING if outcome in (Outcome.WRITTEN, Outcome.FAILED) else logging.INFO,
        "failure hook: %s (%s)",
        outcome.value,
        classification.message,
        extra={**extra, "execution_id": str(run_id or ""), "outcome": outcome.value},
    )
    return outcome


def _write(run_id: uuid.UUID, classification: Classification, holder: str, now: datetime | None) -> Outcome:
    row = (
        Execution.objects.filter(pk=run_id)
        .values("status", "claim_token", "worker", "heartbeat_at", "started_at", "workflow_id", "organization_id")
        .first()
    )
    if row is None:
        return Outcome.NO_RUN
    worker = row["worker"] or ""
    if row["claim_token"] is None or not (worker == holder or worker.startswith(f"{holder} ")):
        return Outcome.UNCLAIMED if row["status"] == S.PENDING else Outcome.NOT_OURS
    if row["status"] != S.RUNNING:
        return Outcome.NOT_OURS  # finished meanwhile (the supervisor wrote it), or reaped
    token = row["claim_token"]
    # The claim read here, in the CAS: a run re-claimed since is not this claim.
    condition = Q(claim_token=token) & _held_by(holder)
    if classification.rule == WORKER_LOST_RULE:
        # The pool process is dead, so no step can start meanwhile; the CAS re-checks it.
        if Step.objects.filter(execution_id=run_id).exists():
            classification = replace(classification, message=f"worker lost: {holder}: {classification.message}")
            condition &= some_step_started()
        else:
            classification = system_fault(
                Code.P0001,
                f"claimed, then lost before its first step: {holder}: {classification.message}",
                rule=WORKER_LOST_RULE,
            )
            condition &= no_step_started()
    now = now or timezone.now()
    result = fail(
        run_id,
        classification,
        actor=Actor.HOOK,
        expected=[S.RUNNING],
        claim_token=token,
        condition=condition,
        now=now,
        log_context={"workflow_id": row["workflow_id"], "organization_id": row["organization_id"]},
    )
    if not result.won:
        return Outcome.LOST
    metrics.CLASSIFIED.labels(rule=classification.rule, error_type=classification.error_type).inc()
    metrics.observe_detection(classification.code, "hook", row["heartbeat_at"] or row["started_at"], now)
    return Outcome.WRITTEN


def _is_run_task(task: object) -> bool:
    return getattr(task, "name", None) == CONSUME_TASK


def report(task: Any, exc: BaseException | None, task_id: str | None, args: Sequence[Any] | None) -> None:
    """Hand one of Celery's failure reports to `record_task_failure`, with the pool
    process that ran the task: known to the main process from the task's Request, else
    this very process (the report comes from inside the pool process)."""
    if exc is None or not task_id or not _is_run_task(task):
        return
    known = _ledger.pool_process(task_id)
    if known is not None:
        hostname, pid = known
    else:
        hostname, pid = getattr(task.request, "hostname", None) or "", os.getpid()
    try:
        record_task_failure(exc, task_id=task_id, args=args, hostname=hostname, pool_pid=pid)
    except Exception:  # a hook must never break Celery's own failure handling
        logger.exception("failure hook failed", extra={"event": "failure_hook", "task_id": task_id})


# How often the main process looks for exited pool processes. The pool is woken by a
# process's sentinel, but a process whose descriptors are closed is not always reapable yet
# at that instant; the pool then finds it only at its own 5 s maintenance timer (measured:
# a SIGKILL seen after 0.2 s or after up to 5 s, bench/bench_detection_latency.py). A
# waitpid per pool process every quarter of a second bounds that.
POOL_WATCH_S = 0.25
_watching: dict[int, object] = {}


@signals.worker_ready.connect(dispatch_uid="pipeline.failure_hooks.watch_pool")
def watch_pool(sender=None, **kwargs) -> None:
    """In the worker's main process, once its consumer is ready: reap exited pool processes
    every POOL_WATCH_S on the worker's own event loop (the same call as the pool's timer,
    in the same thread), so a lost pool process reaches its failure hook at once."""
    hub = getattr(sender, "hub", None)
    maintain = getattr(getattr(sender, "pool", None), "maintain_pool", None)
    if not settings.FAILURE_HOOKS or hub is None or maintain is None or id(hub) in _watching:
        return
    # Registered after the loop's own entries: a reconnect does not cancel it.
    _watching[id(hub)] = hub.call_repeatedly(POOL_WATCH_S, maintain)


@signals.task_failure.connect(dispatch_uid="pipeline.failure_hooks.task_failure")
def _on_task_failure(sender=None, task_id=None, exception=None, args=None, **kwargs) -> None:
    report(sender, exception, task_id, args)


@signals.task_internal_error.connect(dispatch_uid="pipeline.failure_hooks.task_internal_error")
def _on_task_internal_error(sender=None, task_id=None, exception=None, args=None, **kwargs) -> None:
    report(sender, exception, task_id, args)
