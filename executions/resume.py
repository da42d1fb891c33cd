"""Resume from failure (issue 13, docs/decisions/0014-step-retries-and-resume.md).

`resume(execution, actor=..., origin=...)` continues a run that ended `error` or
`system_error`: a new run, `rerun_of` the original (so the original never self-heals
afterwards, DESIGN.md §2), trigger type `resume`, dispatch key `resume:<original>:<n>`.
It runs the workflow's current definition, reuses the recorded outputs of the steps the
original completed (its step rows say `reused`), and starts at the first step that did
not succeed. Every step of a resume sends the original run's Idempotency-Key, so a
receiver that honours keys does not repeat what it already did.

Refused (ResumeRefused, naming why): a run that did not fail, a workflow deleted or
disabled, a definition whose steps before the resume point changed (the first changed
step is named), and, unless `confirm_repeat`, an interrupted step that may have run and
is not idempotent (ResumeNeedsConfirmation names it).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Max

from executions import metrics
from executions.enqueue import EnqueueFailed
from executions.models import Execution, Step, StepStatus
from executions.rerun import RerunRefused, _check_workflow, enqueue_child
from failures.statuses import ERROR_STATUSES, TriggerType
from workflows.models import WorkflowVersion
from workflows.retries import step_idempotent

logger = logging.getLogger("conveyor.resume")

ORIGINS = ("operator", "api", "policy")
# What defines a step for the resume's comparison: a change to any of these before the
# resume point means the recorded outputs no longer answer the definition that would run.
COMPARED_FIELDS = ("id", "action", "config", "next")


class ResumeRefused(RerunRefused):
    """The run cannot be resumed; the message says why."""


class ResumeNeedsConfirmation(ResumeRefused):
    """The step the resume starts at may have run and is not safe to repeat: only an
    explicit confirmation resumes it."""

    def __init__(self, message: str, step_id: str):
        super().__init__(message)
        self.step_id = step_id


@dataclass(frozen=True)
class ResumePlan:
    step_id: str  # the step the resume starts at
    position: int  # its index in the current definition
    may_have_run: bool  # the original started it (it may have done its work)
    idempotent: bool  # the current definition says repeating it is safe
    reused: tuple[str, ...]  # the steps whose outputs are reused

    @property
    def needs_confirmation(self) -> bool:
        return self.may_have_run and not self.idempotent


def definition_of(execution: Execution) -> dict:
    """The definition the run ran (its version), else the workflow's current one."""
    workflow = execution.workflow
    if workflow.version == execution.workflow_version:
        return workflow.definition
    version = (
        WorkflowVersion.objects.filter(workflow_id=execution.workflow_id, version=execution.workflow_version)
        .values_list("definition", flat=True)
        .first()
    )
    return version if version is not None else workflow.definition


def _steps(definition: Any) -> list[dict]:
    steps = definition.get("steps") if isinstance(definition, dict) else None
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def _compared(step: Mapping[str, Any]) -> dict:
    return {name: step.get(name) for name in COMPARED_FIELDS}


def plan(execution: Execution) -> ResumePlan:
    """Where a resume of `execution` would start, or ResumeRefused."""
    if execution.status not in ERROR_STATUSES:
        raise ResumeRefused(f"run {execution.pk} is {execution.status}: only a failed run can be resumed")
    original = _steps(definition_of(execution))
    current = _steps(execution.workflow.definition)
    rows = list(Step.objects.filter(execution_id=execution.pk).order_by("position", "started_at"))
    interrupted = next((row for row in rows if row.status not in (StepStatus.SUCCESS, StepStatus.SKIPPED)), None)
    if interrupted is not None:
        position, may_have_run = interrupted.position, True
    else:
        # No step failed or was cut off: the run stopped between steps (its deadline, a
        # lost worker); it resumes at the step after the last one recorded.
        last = Step.objects.filter(execution_id=execution.pk).aggregate(last=Max("position"))["last"]
        position, may_have_run = (-1 if last is None else last) + 1, False
    if position >= len(original):
        raise ResumeRefused(f"run {execution.pk} has no step left to resume at")
    for i in range(position):
        if i >= len(current) or _compared(original[i]) != _compared(current[i]):
            raise ResumeRefused(
                f"step {original[i].get('id')!r} changed since run {execution.pk} ran (or was removed): its recorded "
                "output no longer stands for the workflow as it is; re-run the run instead"
            )
    if position >= len(current):
        raise ResumeRefused(f"step {original[position].get('id')!r} is no longer in the workflow")
    step = current[position]
    reused = tuple(row.step_id for row in rows if row.status == StepStatus.SUCCESS and row.position < position)
    return ResumePlan(
        step_id=str(step.get("id")),
        position=position,
        may_have_run=may_have_run,
        idempotent=step_idempotent(step),
        reused=reused,
    )


def resume(
    execution: Execution,
    *,
    actor: str,
    origin: str,
    confirm_repeat: bool = False,
    check: Callable[[Execution], None] | None = None,
) -> Execution:
    """Resume a failed run; returns the new run.

    Raises ResumeRefused (ResumeNeedsConfirmation when the interrupted step may repeat
    and `confirm_repeat` is not given), EnqueueFailed when the new run's message could
    not be sent (it is already `system_error` MS-0001). `check` (the retry policy's
    eligibility) runs on the locked parent too.
    """
    if origin not in ORIGINS:
        raise ValueError(f"unknown resume origin {origin!r}")
    decided: dict[str, ResumePlan] = {}

    extra_check = check

    def check_locked(parent: Execution) -> None:
        if extra_check is not None:
            extra_check(parent)
        _check_workflow(parent)
        chosen = plan(parent)  # on the re-read, locked parent
        if chosen.needs_confirmation and not confirm_repeat:
            raise ResumeNeedsConfirmation(
                f"step {chosen.step_id!r} may already have run in run {parent.pk} and is not idempotent: resuming "
                "may repeat it; confirm to resume anyway",
                chosen.step_id,
            )
        decided["plan"] = chosen

    def key(parent: Execution) -> str:
        n = Execution.objects.filter(rerun_of=parent, trigger_type=TriggerType.RESUME).count() + 1
        return f"resume:{parent.pk}:{n}"

    def reason(parent: Execution) -> str:
        return f"resumed from {parent.pk} at step {decided['plan'].step_id}"

    def prepare(parent: Execution, child: Execution) -> None:
        Execution.objects.filter(pk=child.pk).update(resume_step=decided["plan"].step_id)

    try:
        enqueued = enqueue_child(
            execution.pk,
            trigger_type=TriggerType.RESUME,
            dispatch_key=key,
            check=check_locked,
            attempt=1 if origin != "policy" else lambda parent: parent.attempt + 1,
            reason=reason,
            prepare=prepare,
        )
    except ResumeNeedsConfirmation:
        metrics.RESUMES.labels(origin=origin, outcome="needs_confirmation").inc()
        raise
    except RerunRefused:
        metrics.RESUMES.labels(origin=origin, outcome="refused").inc()
        raise
    except EnqueueFailed:
        metrics.RESUMES.labels(origin=origin, outcome="enqueue_failed").inc()
        raise
    metrics.RESUMES.labels(origin=origin, outcome="resumed").inc()
    chosen = decided["plan"]
    logger.info(
        "run resumed",
        extra={
            "event": "resume",
            "execution_id": str(enqueued.execution.pk),
            "rerun_of": str(execution.pk),
            "resume_step": chosen.step_id,
            "reused": len(chosen.reused),
            "confirmed_repeat": bool(confirm_repeat and chosen.needs_confirmation),
            "actor": actor,
            "origin": origin,
        },
    )
    return enqueued.execution


# --- what the runtime needs (pipeline/supervision.load_claimed) -------------------------------
def reused_outputs(execution: Execution, definition: Any) -> dict[str, Any]:
    """For a resume: the outputs of the original's steps before the resume point (in
    `definition`, the one the resume runs)."""
    if not execution.resume_step or execution.rerun_of_id is None:
        return {}
    steps = _steps(definition)
    ids = [s.get("id") for s in steps]
    if execution.resume_step not in ids:
        return {}
    position = ids.index(execution.resume_step)
    rows = Step.objects.filter(
        execution_id=execution.rerun_of_id, status=StepStatus.SUCCESS, position__lt=position
    ).values_list("step_id", "output")
    return {step_id: output for step_id, output in rows}


def idempotency_base(execution: Execution) -> str | None:
    """The run whose id keys a resume's Idempotency-Keys: the first run of its chain of
    resumes (a resume of a resume still sends the original's keys). None for others."""
    if not execution.resume_step or execution.rerun_of_id is None:
        return None
    current: uuid.UUID = execution.rerun_of_id
    for _ in range(100):  # a chain of resumes is short; the bound guards a corrupted one
        row = Execution.objects.filter(pk=current).values_list("resume_step", "rerun_of_id").first()
        if row is None or not row[0] or row[1] is None:
            break
        current = row[1]
    return str(current)
