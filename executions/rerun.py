"""Re-runs: a new run of a finished one (DESIGN.md §2, §5).

`rerun(execution, actor=...)` creates a run that links to the old one (`rerun_of`), keeps
its input, runs the workflow's *current* definition (the version is recorded by enqueue)
and has dispatch key `rerun:<original>:<n>` (the n-th re-run of that run). A run that is
not finished is refused with RerunRefused.

Children are created under a row lock on the parent (`enqueue_child`): the n of a re-run,
the one-retry-per-failed-run rule of the retry policy and the consumer's heal ("a run
that already has a re-run child never heals") all read the parent's children, and the
lock serializes the writers that would otherwise race on them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

from executions.enqueue import Enqueued, EnqueueFailed, enqueue
from executions.models import Execution
from executions.refusals import ActionRefused
from failures.catalogue import PRODUCER_CODES
from failures.statuses import TERMINAL, ExecutionStatus, TriggerType

logger = logging.getLogger("conveyor.rerun")


class RerunRefused(ActionRefused):
    """The run cannot be re-run (not finished, or its workflow is gone or disabled)."""


def rerun(execution: Execution, *, actor: str) -> Execution:
    """Re-run a finished run; returns the new run.

    Raises RerunRefused for a run that is not finished, EnqueueFailed (the new run is
    already `system_error` MS-0001) when its message could not be sent.
    """

    def check(parent: Execution) -> None:
        if parent.status not in TERMINAL:
            raise RerunRefused(f"run {parent.pk} is {parent.status}: only a finished run can be re-run")
        _check_workflow(parent)

    def key(parent: Execution) -> str:
        n = Execution.objects.filter(rerun_of=parent, trigger_type=TriggerType.RERUN).count() + 1
        return f"rerun:{parent.pk}:{n}"

    enqueued = enqueue_child(execution.pk, trigger_type=TriggerType.RERUN, dispatch_key=key, check=check, attempt=1)
    logger.info(
        "re-run created",
        extra={
            "event": "rerun",
            "execution_id": str(enqueued.execution.pk),
            "rerun_of": str(execution.pk),
            "actor": actor,
            "dispatch_key": enqueued.execution.dispatch_key,
        },
    )
    return enqueued.execution


def _check_workflow(parent: Execution) -> None:
    workflow = parent.workflow
    if workflow.deleted_at is not None:
        raise RerunRefused(f"workflow {workflow.pk} was deleted: its runs cannot be re-run")
    if not workflow.enabled:
        raise RerunRefused(f"workflow {workflow.pk} is disabled: enable it to re-run its runs")


def enqueue_child(
    parent_id,
    *,
    trigger_type: str,
    dispatch_key: Callable[[Execution], str],
    check: Callable[[Execution], None],
    attempt: int | Callable[[Execution], int],
    reason: Callable[[Execution], str] | None = None,
    prepare: Callable[[Execution, Execution], None] | None = None,
) -> Enqueued:
    """Create a child run of `parent_id` (same input, current definition) under a lock on
    the parent row; `check` raises to refuse, after the lock, on the re-read parent.

    The message is sent once the transaction commits; if that send fails, EnqueueFailed
    is raised here as from a plain enqueue (the child is `system_error` with the code of
    its trigger type).

    `reason` words the child's `create` row in the transition log; `prepare(parent,
    child)` writes what the child needs before its message can be sent (a resume's
    starting step), in the same transaction.
    """
    with transaction.atomic():
        parent = Execution.objects.select_for_update(of=("self",)).select_related("workflow").get(pk=parent_id)
        check(parent)
        enqueued = enqueue(
            parent.workflow,
            trigger_type=trigger_type,
            dispatch_key=dispatch_key(parent),
            input=parent.input,
            rerun_of=parent,
            attempt=attempt(parent) if callable(attempt) else attempt,
            reason=reason(parent) if reason is not None else "",
        )
        if prepare is not None and enqueued.created:
            prepare(parent, enqueued.execution)
    # After commit the send has happened (on_commit), unless an outer transaction is
    # still open; a send that failed left the child system_error with its producer code.
    child = Execution.objects.get(pk=enqueued.execution.pk)
    code = PRODUCER_CODES.get(child.trigger_type)
    if (
        enqueued.created
        and child.status == ExecutionStatus.SYSTEM_ERROR
        and child.error_code == code
        and not transaction.get_connection().in_atomic_block
    ):
        raise EnqueueFailed(child, code)
    return Enqueued(child, enqueued.created)
