"""Operator and API actions on runs and workflows (DESIGN.md §7).

The admin, the REST API and the organization's pages call these; none of them writes a
status or creates a run itself. Every status write goes through executions.transitions,
every new run through scheduler.enqueue (directly, or through executions.rerun), so an
action is never a bare queryset update.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet

from executions.enqueue import EnqueueFailed, enqueue
from executions.models import Execution
from executions.refusals import FAILURES, ActionRefused, Answer, answer_for
from executions.rerun import RerunRefused, rerun
from executions.resume import ResumeNeedsConfirmation, ResumeRefused, resume
from executions.transitions import TransitionResult, reclassify, transition
from failures.catalogue import CATALOGUE, CATEGORY_FOR_ERROR_TYPE
from failures.classifier import Classification
from failures.statuses import ERROR_STATUSES, IN_PROGRESS, TERMINAL, Actor, ErrorType, ExecutionStatus, TriggerType
from workflows.models import Workflow

logger = logging.getLogger("conveyor.services")
S = ExecutionStatus

# Runs re-run by one bulk request: each is an enqueue (a row and an SQS send), so a large
# incident is recovered in a few confirmed clicks rather than one request that times out.
BULK_RERUN_LIMIT = 200
OPERATOR_RULE = "operator"

__all__ = [
    "BULK_RERUN_LIMIT",
    "FAILURES",
    "ActionRefused",
    "Answer",
    "answer_for",
    "BulkRerunResult",
    "CancelRefused",
    "EnqueueFailed",
    "ReclassifyRefused",
    "RerunRefused",
    "ResumeNeedsConfirmation",
    "ResumeRefused",
    "bulk_resume",
    "resume_run",
    "WorkflowNotRunnable",
    "bulk_rerun",
    "bulk_rerun_candidates",
    "cancel_run",
    "reclassify_run",
    "rerun_run",
    "run_now",
]


class WorkflowNotRunnable(ActionRefused):
    """The workflow is deleted or disabled: a manual run would only be skipped."""


class CancelRefused(ActionRefused):
    """The run is already finished: there is nothing to cancel."""


class ReclassifyRefused(ValueError):
    """The override is inconsistent (type/category/code) or the run did not fail.

    `errors` maps a form field name to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


# --- run a workflow now (issue 3: the manual producer) ------------------------------------
def run_now(workflow: Workflow, *, actor: str, input: dict | None = None) -> Execution:
    """Enqueue a manual run of `workflow`; returns the new run.

    Raises WorkflowNotRunnable for a deleted or disabled workflow, and EnqueueFailed when
    the message could not be sent (the run is already `system_error` MS-0001; the
    exception's `customer_message` is what a customer may be told).
    """
    if workflow.deleted_at is not None:
        raise WorkflowNotRunnable(f"workflow {workflow.pk} was deleted")
    if not workflow.enabled:
        raise WorkflowNotRunnable(f"workflow {workflow.pk} is disabled: enable it to run it")
    enqueued = enqueue(workflow, trigger_type=TriggerType.MANUAL, input=input or {})
    logger.info(
        "manual run created",
        extra={"event": "run_now", "execution_id": str(enqueued.execution.pk), "actor": actor},
    )
    return enqueued.execution


# --- re-run and cancel --------------------------------------------------------------------
def rerun_run(execution: Execution, *, actor: str) -> Execution:
    """Re-run a finished run (RerunRefused if it is not finished or its workflow cannot
    run; EnqueueFailed when the new run's message could not be sent)."""
    return rerun(execution, actor=actor)


def resume_run(execution: Execution, *, actor: str, origin: str, confirm_repeat: bool = False) -> Execution:
    """Resume a failed run from the step that did not succeed (executions/resume.py):
    ResumeRefused if it cannot be, ResumeNeedsConfirmation if its interrupted step may
    repeat and is not idempotent and `confirm_repeat` is not given."""
    return resume(execution, actor=actor, origin=origin, confirm_repeat=confirm_repeat)


def cancel_run(execution_id: uuid.UUID | str, *, actor: str, who: str = "") -> TransitionResult:
    """Cancel a pending or running run.

    `actor` is Actor.API or Actor.OPERATOR. A running run's runtime is killed by its
    supervisor: its next heartbeat finds the run no longer its own. Raises CancelRefused
    when the run is already finished (the transition lost its compare-and-swap).
    """
    if actor not in (Actor.API, Actor.OPERATOR):
        raise ValueError(f"a cancel is made by the API or an operator, not {actor!r}")
    reason = f"cancelled by {who}" if who else "cancelled"
    result = transition(execution_id, S.CANCELLED, actor=actor, expected=IN_PROGRESS, reason=reason)
    if not result:
        raise CancelRefused(f"run {execution_id} is already finished: there is nothing to cancel")
    return result


# --- reclassify -----------------------------------------------------------------------------
def reclassify_run(
    execution_id: uuid.UUID | str,
    *,
    error_type: str,
    error_code: str = "",
    error_category: str = "",
    reason: str,
    operator: str,
    customer_message: str = "",
) -> TransitionResult:
    """An operator's override of a failed run's type/category/code, with a reason kept in
    the transition log; the status follows the single rule (error <-> system_error).

    A system classification takes the code's catalogue category (a different category is
    refused); user and external ones carry no code. Moving a system error to user or
    external needs `customer_message`: a system error's stored message is internal and
    must never become what the customer reads.
    """
    errors: dict[str, str] = {}
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = "a reclassification needs a reason"
    if error_type not in ErrorType.values:
        errors["error_type"] = f"unknown error type {error_type!r} (allowed: {', '.join(ErrorType.values)})"
    execution = Execution.objects.filter(pk=execution_id).only("status", "error_type", "error_message").first()
    if execution is None:
        raise Execution.DoesNotExist(f"run {execution_id} does not exist")
    if execution.status not in ERROR_STATUSES:
        errors["status"] = f"run is {execution.status}: only a failed run can be reclassified"
    if errors:
        raise ReclassifyRefused(errors)

    if error_type == ErrorType.SYSTEM:
        entry = CATALOGUE.get(error_code)
        if entry is None:
            raise ReclassifyRefused({"error_code": "a system error needs a code from the catalogue"})
        if error_category and error_category != entry.category:
            raise ReclassifyRefused(
                {"error_category": f"{error_code} belongs to category {entry.category}, not {error_category}"}
            )
        category, code = entry.category, error_code
        message = execution.error_message  # stays internal
    else:
        if error_code:
            raise ReclassifyRefused({"error_code": f"a {error_type} error carries no code"})
        category = CATEGORY_FOR_ERROR_TYPE[error_type]
        if error_category and error_category != category:
            raise ReclassifyRefused({"error_category": f"a {error_type} error has category {category}"})
        code = ""
        customer_message = (customer_message or "").strip()
        if execution.error_type == ErrorType.SYSTEM and not customer_message:
            raise ReclassifyRefused(
                {"customer_message": "say what the customer should read: a system error's message is internal"}
            )
        message = customer_message or execution.error_message
    classification = Classification(error_type, category, code, OPERATOR_RULE, message)
    result = reclassify(execution_id, classification, reason=reason, operator=operator)
    if not result:
        raise ReclassifyRefused({"status": "the run changed status meanwhile: reload it and try again"})
    return result


# --- bulk re-run (incident recovery) --------------------------------------------------------
def bulk_rerun_candidates(code: str, since: datetime, until: datetime) -> QuerySet[Execution]:
    """Finished runs with `code` created in [since, until) that have no child run yet
    (neither a re-run nor an automatic retry): served by the (error_code, created_at)
    index. Runs already re-run drop out, so repeating a bulk re-run never doubles one."""
    if code not in CATALOGUE:
        raise ValueError(f"unknown error code {code!r}")
    children = Execution.objects.filter(rerun_of=OuterRef("pk"))
    return (
        Execution.objects.filter(error_code=code, created_at__gte=since, created_at__lt=until)
        .filter(status__in=sorted(TERMINAL))
        .filter(~Q(Exists(children)))
        .order_by("created_at", "id")
    )


@dataclass
class BulkRerunResult:
    rerun: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)  # (original, new run)
    refused: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    enqueue_failed: tuple[uuid.UUID | None, str] | None = None  # (new run, customer message): stopped there
    remaining: int = 0

    @property
    def stopped_early(self) -> bool:
        return self.enqueue_failed is not None


def bulk_rerun(code: str, since: datetime, until: datetime, *, actor: str, limit: int | None = None) -> BulkRerunResult:
    """Re-run up to `limit` of the runs `bulk_rerun_candidates` selects, oldest first."""
    result = rerun_each(bulk_rerun_candidates(code, since, until), actor=actor, limit=limit)
    logger.info(
        "bulk re-run",
        extra={
            "event": "bulk_rerun",
            "error_code": code,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "actor": actor,
            "rerun": len(result.rerun),
            "refused": len(result.refused),
            "stopped_early": result.stopped_early,
        },
    )
    return result


def rerun_each(candidates: QuerySet[Execution], *, actor: str, limit: int | None = None) -> BulkRerunResult:
    """Re-run up to `limit` of `candidates`, in their order (see _recover_each)."""
    return _recover_each(candidates, lambda execution: rerun(execution, actor=actor), limit)


def resume_each(candidates: QuerySet[Execution], *, actor: str, limit: int | None = None) -> BulkRerunResult:
    """Resume up to `limit` of `candidates` (failed runs), in their order, as an operator:
    a run whose interrupted step may repeat is refused and listed (it is resumed one by
    one, with a confirmation)."""
    return _recover_each(candidates, lambda execution: resume(execution, actor=actor, origin="operator"), limit)


def _recover_each(
    candidates: QuerySet[Execution], recover: Callable[[Execution], Execution], limit: int | None
) -> BulkRerunResult:
    """`recover` (a re-run or a resume) each of the first `limit` candidates. Stops at the
    first run whose message cannot be sent (the queue is down: every other send would fail
    too, and each would leave a failed child behind). `remaining` counts the candidates
    still without a child run afterwards, the refused ones included."""
    limit = BULK_RERUN_LIMIT if limit is None else limit
    result = BulkRerunResult()
    for execution in candidates.select_related("workflow")[:limit]:
        try:
            child = recover(execution)
        except RerunRefused as exc:
            result.refused.append((execution.pk, str(exc)))
            continue
        except EnqueueFailed as exc:
            answer = answer_for(exc)
            result.enqueue_failed = (answer.run_id, answer.message)
            break
        result.rerun.append((execution.pk, child.pk))
    result.remaining = candidates.count()
    return result


def bulk_resume(
    code: str, since: datetime, until: datetime, *, actor: str, limit: int | None = None
) -> BulkRerunResult:
    """Resume up to `limit` of the failed runs with `code` in [since, until) that have no
    child run yet, oldest first. A run whose interrupted step may repeat and is not
    idempotent is refused (listed): it is resumed one by one, with a confirmation."""
    candidates = bulk_rerun_candidates(code, since, until).filter(status__in=sorted(ERROR_STATUSES))
    result = resume_each(candidates, actor=actor, limit=limit)
    logger.info(
        "bulk resume",
        extra={
            "event": "bulk_resume",
            "error_code": code,
            "actor": actor,
            "resumed": len(result.rerun),
            "refused": len(result.refused),
            "stopped_early": result.stopped_early,
        },
    )
    return result
