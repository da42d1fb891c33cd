"""The system-error retry policy (DESIGN.md §2, docs/decisions/0004-triggers.md).

A workflow with `system_retry_max_attempts > 0` has its runs re-run automatically when
they end `system_error` with a code that proves no step ever started
(catalogue.AUTO_RETRIED_CODES: P-0001, P-0002, P-0005 and the producer codes
CS/BS/ES/MS-0001). Nothing else is ever retried by it: not a user or external error, not
a system error that may have partly run (P-0003, E-0001, ...), not a run that has steps,
not a fire time or block missed during an outage (CS-0002, BS-0002: replaying them is not
what a schedule means; an operator may re-run one).

- bound: a run's `attempt` counts system retries only (1 for a run a trigger or a user
  made); a retry is made while attempt <= system_retry_max_attempts;
- back-off: the retry of attempt k is due system_retry_backoff_seconds * 2**(k-1) after
  the failure (capped at half the scan's look-back, so every retry comes due in it);
- the retry: trigger type `retry`, same input, the workflow's current definition,
  `rerun_of` = the failed run, attempt k+1, dispatch key `retry:<failed run>:<k+1>`:
  one retry per failed run, whoever asks and however often.

With `system_retry_resume` on (off by default), the policy also takes P-0003 and E-0001
runs (catalogue.RESUMED_CODES: lost or timed out mid-way, so they may have partly run):
one whose interrupted step is idempotent is retried as a resume (executions/resume.py:
the steps that succeeded are not run again, the interrupted one is repeated with the
original Idempotency-Key), within the same bound and back-off; one whose interrupted
step is not idempotent is left for an operator (`left_for_operator`, counted once in
conveyor_resumes_total{origin="policy",outcome="needs_confirmation"}; its customer
message says so).

It runs as a periodic beat task on the maintenance queue (`tick`), which scans recent
system errors; `maybe_schedule_retry(execution_id)` decides one run and may be called
from anywhere (it is idempotent).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from executions import metrics as execution_metrics
from executions.enqueue import EnqueueFailed
from executions.models import Execution, Step
from executions.rerun import RerunRefused, enqueue_child
from executions.resume import ResumeRefused, plan, resume
from failures.catalogue import AUTO_RETRIED_CODES, MISSED_DISPATCH_CODES, RESUMED_CODES
from failures.statuses import ErrorType, ExecutionStatus, TriggerType
from scheduler import metrics

logger = logging.getLogger("conveyor.retry_policy")


class NotEligible(Exception):
    """Why a run is not retried (now or ever)."""

    def __init__(self, reason: str, *, later: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.later = later  # True: not yet due, a later tick may retry it


@dataclass(frozen=True)
class Decision:
    outcome: str  # retried | enqueue_failed | not_due | ineligible | duplicate | left_for_operator
    reason: str = ""
    retry: Execution | None = None


def max_backoff_seconds() -> float:
    return settings.SYSTEM_RETRY_LOOKBACK_S / 2


def backoff_seconds(base_seconds: int, attempt: int) -> float:
    """Delay before retrying a run of `attempt` (1-based): base * 2**(attempt-1), capped."""
    return min(float(base_seconds) * 2 ** max(attempt - 1, 0), max_backoff_seconds())


def due_at(execution: Execution) -> datetime:
    finished = execution.finished_at or execution.created_at
    return finished + timedelta(
        seconds=backoff_seconds(execution.workflow.system_retry_backoff_seconds, execution.attempt)
    )


def resumes(execution: Execution) -> bool:
    """Whether the policy would retry this run as a resume (rather than a re-run)."""
    return execution.workflow.system_retry_resume and execution.error_code in RESUMED_CODES


def check_eligible(execution: Execution, now: datetime) -> None:
    """Raise NotEligible unless the policy may retry this run now."""
    workflow = execution.workflow
    if workflow.system_retry_max_attempts <= 0:
        raise NotEligible("the workflow's system-error retry policy is off")
    if execution.status != ExecutionStatus.SYSTEM_ERROR or execution.error_type != ErrorType.SYSTEM:
        raise NotEligible(f"run is {execution.status}/{execution.error_type or '-'}: only system errors are retried")
    if resumes(execution):
        _check_resumable(execution, now)
        return
    if execution.error_code not in AUTO_RETRIED_CODES:
        if execution.error_code in MISSED_DISPATCH_CODES:
            raise NotEligible(f"{execution.error_code} is a missed fire time or block: never replayed automatically")
        raise NotEligible(f"{execution.error_code or 'no code'} may have partly run: never retried automatically")
    if Step.objects.filter(execution_id=execution.pk).exists():
        raise NotEligible("a step of this run started: never retried automatically")
    _check_budget(execution, now)


def _check_budget(execution: Execution, now: datetime) -> None:
    """What a retry and a policy resume share: the attempt bound, a live workflow, no
    child run yet, and the back-off."""
    workflow = execution.workflow
    if execution.attempt > workflow.system_retry_max_attempts:
        raise NotEligible(f"attempt {execution.attempt} reached the bound of {workflow.system_retry_max_attempts}")
    if workflow.deleted_at is not None or not workflow.enabled:
        raise NotEligible("the workflow is deleted or disabled")
    if Execution.objects.filter(rerun_of_id=execution.pk).exists():
        raise NotEligible("this run was already re-run or retried")
    if now < due_at(execution):
        raise NotEligible(f"retry due at {due_at(execution).isoformat()}", later=True)


def _check_resumable(execution: Execution, now: datetime) -> None:
    """The resume path's rules: the same bound, children and back-off as a retry; the
    interrupted step must be safe to repeat."""
    if execution.left_for_operator:
        raise NotEligible("its interrupted step is not safe to repeat: left for an operator")
    _check_budget(execution, now)


def _leave_for_operator(execution_id, step_id: str) -> None:
    """Mark a run the policy will not resume; counted once (the first mark wins)."""
    if Execution.objects.filter(pk=execution_id, left_for_operator=False).update(left_for_operator=True):
        execution_metrics.RESUMES.labels(origin="policy", outcome="needs_confirmation").inc()
        logger.info(
            "system error left for an operator",
            extra={"event": "system_retry_left_for_operator", "execution_id": str(execution_id), "step_id": step_id},
        )


def _resume(execution_id: uuid.UUID | str, now: datetime) -> Decision:
    execution = Execution.objects.select_related("workflow").get(pk=execution_id)
    try:
        check_eligible(execution, now)
        chosen = plan(execution)
    except NotEligible as refused:
        return Decision("not_due" if refused.later else "ineligible", refused.reason)
    except ResumeRefused as refused:
        return Decision("ineligible", str(refused))
    if chosen.needs_confirmation:
        _leave_for_operator(execution.pk, chosen.step_id)
        return Decision("left_for_operator", f"step {chosen.step_id} may repeat and is not idempotent")
    try:
        child = resume(
            execution,
            actor="policy",
            origin="policy",
            check=lambda parent: check_eligible(parent, now),  # again, on the locked parent
        )
    except NotEligible as refused:
        return Decision("not_due" if refused.later else "ineligible", refused.reason)
    except RerunRefused as refused:
        return Decision("ineligible", str(refused))
    except EnqueueFailed as failed:
        _count(execution_id)
        return Decision("enqueue_failed", failed.code, failed.execution)
    code = _count(execution_id)
    logger.info(
        "system error resumed",
        extra={
            "event": "system_retry_resume",
            "execution_id": str(child.pk),
            "rerun_of": str(execution_id),
            "error_code": code,
            "attempt": child.attempt,
            "resume_step": child.resume_step,
        },
    )
    return Decision("retried", retry=child)


def retry_key(execution: Execution) -> str:
    return f"retry:{execution.pk}:{execution.attempt + 1}"


def maybe_schedule_retry(execution_id: uuid.UUID | str, now: datetime | None = None) -> Decision:
    """Retry this run if the policy says so and it is due; idempotent."""
    now = now or timezone.now()
    if Execution.objects.filter(
        pk=execution_id, error_code__in=sorted(RESUMED_CODES), workflow__system_retry_resume=True
    ).exists():
        return _resume(execution_id, now)

    def check(parent: Execution) -> None:
        check_eligible(parent, now)  # on the re-read, locked parent

    try:
        enqueued = enqueue_child(
            execution_id,
            trigger_type=TriggerType.RETRY,
            dispatch_key=retry_key,
            check=check,
            attempt=lambda parent: parent.attempt + 1,
        )
    except NotEligible as refused:
        return Decision("not_due" if refused.later else "ineligible", refused.reason)
    except EnqueueFailed as failed:
        # The retry exists as system_error MS-0001, itself a did-no-work code: a later
        # tick may retry it in turn, within the same bound.
        _count(execution_id)
        return Decision("enqueue_failed", failed.code, failed.execution)
    if not enqueued.created:
        return Decision("duplicate", retry=enqueued.execution)
    code = _count(execution_id)
    logger.info(
        "system error retried",
        extra={
            "event": "system_retry",
            "execution_id": str(enqueued.execution.pk),
            "rerun_of": str(execution_id),
            "error_code": code,
            "attempt": enqueued.execution.attempt,
        },
    )
    return Decision("retried", retry=enqueued.execution)


def _count(execution_id) -> str:
    code = Execution.objects.filter(pk=execution_id).values_list("error_code", flat=True).first() or ""
    metrics.SYSTEM_RETRIES.labels(code=code).inc()
    return code


@dataclass
class RetryTickReport:
    retried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_due: int = 0
    errors: int = 0


def candidates(now: datetime):
    """Recent system errors that the policy might retry (the rest is checked per run)."""
    children = Execution.objects.filter(rerun_of=OuterRef("pk"))
    retried = Q(error_code__in=sorted(AUTO_RETRIED_CODES))
    resumed = Q(error_code__in=sorted(RESUMED_CODES), workflow__system_retry_resume=True, left_for_operator=False)
    return (
        Execution.objects.filter(retried | resumed)
        .filter(
            status=ExecutionStatus.SYSTEM_ERROR,
            error_type=ErrorType.SYSTEM,
            finished_at__gte=now - timedelta(seconds=settings.SYSTEM_RETRY_LOOKBACK_S),
            workflow__system_retry_max_attempts__gt=0,
            workflow__enabled=True,
            workflow__deleted_at__isnull=True,
            attempt__lte=F("workflow__system_retry_max_attempts"),
        )
        .filter(~Exists(children))
        .order_by("finished_at")
    )


def tick(now: datetime | None = None) -> RetryTickReport:
    """One pass of the policy over recent system errors (the beat task's body)."""
    now = now or timezone.now()
    report = RetryTickReport()
    ids = list(candidates(now).values_list("pk", flat=True)[: settings.SYSTEM_RETRY_BATCH_SIZE])
    for pk in ids:
        try:
            decision = maybe_schedule_retry(pk, now)
        except Exception:
            report.errors += 1
            logger.exception("retry policy could not handle a run", extra={"execution_id": str(pk)})
            continue
        if decision.retry is None:
            if decision.outcome == "not_due":
                report.not_due += 1
            continue
        if decision.outcome == "retried":
            report.retried.append(str(decision.retry.pk))
        elif decision.outcome == "enqueue_failed":
            report.failed.append(str(decision.retry.pk))
    return report
