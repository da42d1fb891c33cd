"""The one way a run is queued: every producer (schedule, block, event, manual, re-run,
retry) calls `enqueue`. The row is written by the status writer (transitions.create),
the message sent by the queue client (messaging.queue.publish).

The row is created `pending` and committed first, then the message is sent: never inside
an open transaction, or a fast worker would find no row. Called inside one, the send is
deferred with `transaction.on_commit`. A send that fails resolves the row at once to
`system_error` with the producer's own code (CS/BS/ES/MS-0001), whatever the cause: no
message was sent, so the run provably did no work.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from executions import metrics
from executions.models import Execution
from executions.transitions import create, fail
from failures.catalogue import PRODUCER_CODES
from failures.classifier import system_fault
from failures.statuses import Actor, ExecutionStatus
from messaging.queue import publish
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


def enqueue(
    workflow: Workflow,
    *,
    trigger_type: str,
    dispatch_key: str | None = None,
    input: dict | None = None,
    rerun_of: Execution | None = None,
    attempt: int = 1,
    reason: str = "",
) -> Enqueued:
    execution = create(
        workflow,
        trigger_type=trigger_type,
        dispatch_key=dispatch_key,
        input=input,
        rerun_of=rerun_of,
        attempt=attempt,
        reason=reason,
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
    execution = create(
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


@dataclass(frozen=True)
class Missed:
    """A fire time or a block an outage kept from being dispatched."""

    dispatch_key: str  # the one it would have run with: it can never run as well
    input: dict
    label: str  # how a summary names it: the fire time, the block number


def record_missed(
    workflow: Workflow,
    *,
    trigger_type: str,
    code: str,
    missed: Iterable[Missed],
    cause: str,
    what: str,
    summary_key: str,
    summary_input: dict,
) -> int:
    """Record what an outage kept from being dispatched (`missed`, oldest first): the
    latest CONVEYOR_MISSED_RUN_RECORDS_MAX as a run each, the older rest counted in one
    summary record (`<summary_key>:missed:<first>:<last>`). Returns how many were missed."""
    keep = settings.MISSED_RUN_RECORDS_MAX
    latest: deque[Missed] = deque()
    rest, first, last = 0, "", ""
    for item in missed:
        latest.append(item)
        if len(latest) > keep:
            dropped = latest.popleft()
            rest, first, last = rest + 1, first or dropped.label, dropped.label
    for item in latest:
        record_not_dispatched(
            workflow,
            trigger_type=trigger_type,
            dispatch_key=item.dispatch_key,
            code=code,
            input={**item.input, "missed": True},
            cause=cause,
        )
    if rest:
        record_not_dispatched(
            workflow,
            trigger_type=trigger_type,
            dispatch_key=f"{summary_key}:missed:{first}:{last}",
            code=code,
            input={**summary_input, "missed": {"count": rest, "first": first, "last": last}},
            cause=f"{rest} {what} from {first} to {last}: {cause} (one summary record)",
            missed=rest,
        )
    total = len(latest) + rest
    if total:
        logger.warning(
            "%d %s missed: recorded as %s",
            total,
            what,
            code,
            extra={"event": "missed_dispatch", "workflow_id": workflow.pk, "missed": total, "error_code": code},
        )
    return total
