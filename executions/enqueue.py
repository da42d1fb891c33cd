"""The one way a run is created: every producer (schedule, block, event, manual, re-run)
calls `enqueue`.

The row is created `pending` and committed first, then the message is sent: never inside
an open transaction, or a fast worker would find no row. Called inside one, the send is
deferred with `transaction.on_commit`. A send that fails resolves the row at once to
`system_error` with the producer's own code (CS/BS/ES/MS-0001), whatever the cause: no
message was sent, so the run provably did no work.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from executions import metrics
from executions.models import Execution, Transition
from executions.transitions import fail
from failures.catalogue import PRODUCER_CODES
from failures.classifier import system_fault
from failures.statuses import Actor, ExecutionStatus, TriggerType
from messaging import messages
from workflows.models import Workflow

logger = logging.getLogger("conveyor.enqueue")


class EnqueueFailed(Exception):
    """The run exists but its message could not be sent; it is already `system_error`."""

    def __init__(self, execution: Execution, code: str):
        self.execution = execution
        self.code = code
        super().__init__(f"run {execution.id} could not be queued ({code})")

    @property
    def customer_message(self) -> str:
        self.execution.refresh_from_db()
        return self.execution.customer_message


@dataclass(frozen=True)
class Enqueued:
    execution: Execution
    created: bool


def _create_pending(
    workflow: Workflow,
    *,
    trigger_type: str,
    dispatch_key: str | None,
    input: dict | None,
    rerun_of: Execution | None = None,
    attempt: int = 1,
    reason: str = "",
) -> Execution | None:
    """Create the run `pending` with its transition-log row and commit; None when the
    dispatch key exists already."""
    if trigger_type not in TriggerType.values:
        raise ValueError(f"unknown trigger type {trigger_type!r}")
    now = timezone.now()
    deadline = workflow.deadline_seconds or settings.RUN_DEADLINE_S
    try:
        with transaction.atomic():
            execution = Execution.objects.create(
                id=uuid.uuid4(),
                workflow=workflow,
                organization_id=workflow.organization_id,
                workflow_version=workflow.version,
                trigger_type=trigger_type,
                dispatch_key=dispatch_key,
                status=ExecutionStatus.PENDING,
                status_actor=Actor.PRODUCER,
                input=input or {},
                rerun_of=rerun_of,
                attempt=attempt,
                runtime=workflow.runtime or settings.DEFAULT_RUNTIME,
                created_at=now,
                queued_at=now,
                deadline_at=now + timedelta(seconds=deadline),
                steps_total=len((workflow.definition or {}).get("steps", [])),
            )
            Transition.objects.create(
                execution=execution,
                from_status="",
                to_status=ExecutionStatus.PENDING,
                actor=Actor.PRODUCER,
                move="create",
                reason=reason or trigger_type,
                at=now,
            )
    except IntegrityError:
        if dispatch_key is None:
            raise
        logger.info("duplicate dispatch key", extra={"event": "enqueue_duplicate", "dispatch_key": dispatch_key})
        return None
    metrics.RUNS_CREATED.labels(trigger_type=trigger_type).inc()
    # One log line per transition, the create included (the others: executions/transitions.py).
    logging.getLogger("conveyor.transitions").info(
        "transition  -> %s",
        ExecutionStatus.PENDING,
        extra={
            "event": "transition",
            "execution_id": str(execution.pk),
            "workflow_id": execution.workflow_id,
            "organization_id": execution.organization_id,
            "from_status": "",
            "status": ExecutionStatus.PENDING,
            "move": "create",
            "actor": Actor.PRODUCER,
            "error_type": "",
            "error_category": "",
            "error_code": "",
        },
    )
    return execution


def enqueue(
    workflow: Workflow,
    *,
    trigger_type: str,
    dispatch_key: str | None = None,
    input: dict | None = None,
    rerun_of: Execution | None = None,
    attempt: int = 1,
) -> Enqueued:
    execution = _create_pending(
        workflow,
        trigger_type=trigger_type,
        dispatch_key=dispatch_key,
        input=input,
        rerun_of=rerun_of,
        attempt=attempt,
    )
    if execution is None:
        return Enqueued(Execution.objects.get(dispatch_key=dispatch_key), created=False)
    if connection.in_atomic_block:
        # The row is not committed yet: a worker must never receive a message for it.
        transaction.on_commit(lambda: _send_or_resolve(execution, raise_on_failure=False))
    else:
        _send_or_resolve(execution, raise_on_failure=True)
    return Enqueued(execution, created=True)


def record_not_dispatched(
    workflow: Workflow,
    *,
    trigger_type: str,
    dispatch_key: str,
    code: str,
    input: dict,
    cause: str,
    missed: int = 1,
) -> Enqueued:
    """Record a fire time (or block) the platform could not dispatch in time as a run of
    its own, `system_error` with `code` (CS-0002, BS-0002): no message is sent, no work
    is done, and the dispatch key makes sure the fire time never runs as well. A summary
    record stands for `missed` of them."""
    execution = _create_pending(
        workflow, trigger_type=trigger_type, dispatch_key=dispatch_key, input=input, reason=f"{trigger_type} missed"
    )
    if execution is None:
        return Enqueued(Execution.objects.get(dispatch_key=dispatch_key), created=False)
    fail(
        execution.id,
        system_fault(code, cause, rule="missed-dispatch"),
        actor=Actor.PRODUCER,
        expected=[ExecutionStatus.PENDING],
        log_context={"workflow_id": workflow.pk, "organization_id": workflow.organization_id},
    )
    metrics.MISSED_DISPATCHES.labels(producer=trigger_type, code=code).inc(missed)
    return Enqueued(execution, created=True)


def publish(execution_id: uuid.UUID | str, dispatch_key: str | None, *, delay_seconds: int = 0) -> None:
    from pipeline.tasks import consume_run

    options = {"queue": settings.RUNS_QUEUE, "retry": False}
    if delay_seconds:
        options["DelaySeconds"] = delay_seconds
    consume_run.apply_async(args=[messages.build(execution_id, dispatch_key)], **options)


def _send_or_resolve(execution: Execution, *, raise_on_failure: bool) -> None:
    try:
        publish(execution.id, execution.dispatch_key)
    except Exception as exc:
        code = PRODUCER_CODES[execution.trigger_type]
        cause = f"SendMessage failed: {type(exc).__name__}: {exc}"
        result = fail(
            execution.id,
            system_fault(code, cause, rule="producer-send"),
            actor=Actor.PRODUCER,
            expected=[ExecutionStatus.PENDING],
        )
        metrics.ENQUEUE_FAILURES.labels(producer=execution.trigger_type, code=code).inc()
        logger.error(
            "enqueue failed",
            extra={"event": "enqueue_failed", "execution_id": str(execution.id), "error_code": code, "won": result.won},
        )
        if raise_on_failure:
            raise EnqueueFailed(execution, code) from exc
