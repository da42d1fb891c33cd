"""The consumer: what happens to one run message, in order (DESIGN.md §4).

verify (else dead-letter) → the run exists (else drop) → claimable, as the table of
moves says (else duplicate) →
guards (workflow missing or disabled → skipped) → concurrency (else RequeueSignal: a
delayed copy, nothing marked) → claim (CAS) → dispatch to a runtime. Any other exception
is the backstop's: E-0004 on the statuses the run may be in. The message was already
acknowledged when the worker accepted it, so nothing redelivers it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from datetime import timedelta
from enum import StrEnum

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import BooleanField, ExpressionWrapper
from django.utils import timezone

from executions.models import Execution
from executions.transitions import claimable, fail, transition
from failures import faults
from failures.catalogue import Code
from failures.classifier import system_fault
from failures.errors import RequeueSignal
from failures.statuses import IN_PROGRESS, Actor, ExecutionStatus
from messaging import messages
from messaging.queue import dead_letter_safely, publish
from pipeline import metrics
from pipeline.runtimes import dispatch
from pipeline.supervision import load_claimed
from workflows.models import Workflow

logger = logging.getLogger("conveyor.consumer")
S = ExecutionStatus


class Outcome(StrEnum):
    CLAIMED = "claimed"
    DUPLICATE = "duplicate"
    REQUEUED = "requeued"
    DEAD_LETTERED = "dead_lettered"
    MISSING = "missing"
    SKIPPED = "skipped"
    BACKSTOP = "backstop"


def consume(envelope: object, *, hostname: str = "") -> Outcome:
    try:
        message = messages.verify(envelope)
    except messages.InvalidMessage as refused:
        dead_letter_safely(
            envelope if isinstance(envelope, str) else json.dumps(envelope, default=str),
            reason=refused.reason,
            source="consumer",
            detail=refused.detail,
        )
        return _count(Outcome.DEAD_LETTERED)

    execution = (
        Execution.objects.select_related("workflow")
        .annotate(claimable=ExpressionWrapper(claimable(), output_field=BooleanField()))
        .filter(pk=message.execution_id)
        .first()
    )
    if execution is None:
        logger.warning("message for a missing run dropped", extra={"execution_id": str(message.execution_id)})
        return _count(Outcome.MISSING)

    try:
        return _consume(execution, envelope, hostname)
    except RequeueSignal as signal:
        return _requeue(execution, message, signal)
    except Exception as exc:
        return _backstop(execution, exc)


def _consume(execution: Execution, envelope: object, hostname: str) -> Outcome:
    if not execution.claimable:  # type: ignore[attr-defined]  # annotated by the query in consume()
        logger.info("duplicate delivery dropped", extra={"execution_id": str(execution.id), "status": execution.status})
        return _count(Outcome.DUPLICATE)

    workflow = execution.workflow
    if not workflow.is_runnable:
        reason = "workflow deleted" if workflow.deleted_at else "workflow disabled"
        transition(execution.id, S.SKIPPED, actor=Actor.CONSUMER, expected=[S.PENDING], reason=reason)
        return _count(Outcome.SKIPPED)

    faults.maybe_inject("consumer")
    claim_token = uuid.uuid4()
    now = timezone.now()
    deadline = timedelta(seconds=workflow.deadline_seconds or settings.RUN_DEADLINE_S)
    claim_values = {
        "claim_token": claim_token,
        "started_at": now,
        "heartbeat_at": now,
        "deadline_at": now + deadline,
        "worker": f"{hostname or socket.gethostname()} pid={os.getpid()}",
    }
    limited = bool(
        workflow.concurrency_limit or settings.DEFAULT_WORKFLOW_CONCURRENCY or settings.GLOBAL_CONCURRENCY_LIMIT
    )
    with transaction.atomic() if limited else contextlib.nullcontext():
        if limited:
            _check_concurrency(workflow)
        claimed = transition(
            execution.id,
            S.RUNNING,
            actor=Actor.CONSUMER,
            expected=[S.PENDING, S.SYSTEM_ERROR],
            values=claim_values,
            now=now,
            log_context={"workflow_id": workflow.pk, "organization_id": execution.organization_id},
        )
    if not claimed:
        return _count(Outcome.DUPLICATE)
    _count(Outcome.CLAIMED)
    metrics.START_DELAY.observe(max(0.0, (now - execution.created_at).total_seconds()))

    for field, value in claim_values.items():
        setattr(execution, field, value)
    execution.status = S.RUNNING
    dispatch(load_claimed(execution, claim_token), execution.runtime or settings.DEFAULT_RUNTIME)
    return Outcome.CLAIMED


def _check_concurrency(workflow: Workflow) -> None:
    """Raise RequeueSignal when the workflow's or the global limit is reached.

    The workflow row is locked for the check and the claim that follows, so two workers
    cannot both take the last slot of one workflow."""
    limit = workflow.concurrency_limit or settings.DEFAULT_WORKFLOW_CONCURRENCY
    global_cap = settings.GLOBAL_CONCURRENCY_LIMIT
    if not limit and not global_cap:
        return
    Workflow.objects.select_for_update().filter(pk=workflow.pk).values_list("pk", flat=True).first()
    delay = settings.REQUEUE_DELAY_S
    if limit:
        running = Execution.objects.filter(workflow_id=workflow.pk, status=S.RUNNING).count()
        if running >= limit:
            raise RequeueSignal(f"workflow concurrency limit {limit} reached", delay)
    if global_cap:
        running = Execution.objects.filter(status=S.RUNNING).count()
        if running >= global_cap:
            raise RequeueSignal(f"global concurrency cap {global_cap} reached", delay)


def _requeue(execution: Execution, message: messages.RunMessage, signal: RequeueSignal) -> Outcome:
    """Send a copy that SQS holds for `delay_seconds`; the run is neither marked nor
    duplicated, and queued_at is reset so the reaper measures the new wait."""

    try:
        publish(execution.id, message.dispatch_key, delay_seconds=signal.delay_seconds)
    except Exception as exc:
        return _backstop(execution, exc, what="requeue failed")
    Execution.objects.filter(pk=execution.id, status=S.PENDING).update(queued_at=timezone.now())
    logger.info("run requeued", extra={"execution_id": str(execution.id), "reason": signal.reason})
    return _count(Outcome.REQUEUED)


def _backstop(execution: Execution, exc: BaseException, *, what: str = "consumer failed") -> Outcome:
    logger.exception("consumer backstop", extra={"execution_id": str(execution.id)}, exc_info=exc)
    close_old_connections()
    try:
        fail(
            execution.id,
            system_fault(Code.E0004, f"{what}: {type(exc).__name__}: {exc}", rule="consumer-backstop"),
            actor=Actor.CONSUMER,
            expected=sorted(IN_PROGRESS),
        )
    except Exception:
        # The database itself may be what failed; the reaper will age the run.
        logger.exception("backstop could not record E-0004", extra={"execution_id": str(execution.id)})
    return _count(Outcome.BACKSTOP)


def _count(outcome: Outcome) -> Outcome:
    metrics.CLAIMS.labels(outcome=outcome.value).inc()
    return outcome
