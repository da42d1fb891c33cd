"""What both runtimes share: loading what a run needs, recording its steps, and writing
its outcome (success, classified failure, runtime failure) through the transition
function. Only the supervising process (the worker's pool process) calls these."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.db.models import Q
from django.utils import timezone

from executions import resume
from executions.models import Execution, Step
from executions.outputs import stored_form
from executions.transitions import fail, finish_step, no_step_started, some_step_started, start_step, transition
from failures.catalogue import Code
from failures.classifier import Classification, system_fault
from failures.statuses import Actor, ExecutionStatus, status_for_error_type
from pipeline import metrics
from tenancy.secrets import load_organization_secrets
from workflows.definitions import referenced_secrets
from workflows.models import WorkflowVersion

logger = logging.getLogger("conveyor.runtime")
S = ExecutionStatus
T = TypeVar("T")


def with_db_retry(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `fn`; if the database connection broke (terminated backend, failover), open a
    new connection and try once more. A run survives a dropped connection; a database
    that stays down surfaces as C-0002 through the classifier."""
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        logger.warning("database connection lost; reconnecting", exc_info=True)
        connection.close()
        return fn(*args, **kwargs)


@dataclass(frozen=True)
class Claimed:
    """A run this process owns under `claim_token`."""

    execution_id: uuid.UUID
    claim_token: uuid.UUID
    workflow_id: int
    organization_id: int
    definition: dict
    input: dict
    deadline_seconds: float
    started_at: datetime | None = None
    # The secrets its templates reference: the only ones decrypted and handed to the run.
    secret_names: frozenset[str] = frozenset()
    # A resume (executions/resume.py): the original's outputs it reuses, and the run
    # whose Idempotency-Keys its steps send.
    reused_outputs: dict = field(default_factory=dict)
    idempotency_base: str | None = None

    @property
    def log_context(self) -> dict:
        return {"workflow_id": self.workflow_id, "organization_id": self.organization_id}

    def finishing(self, now: datetime) -> dict:
        """Columns a terminal write adds: the duration, known here without a read."""
        if self.started_at is None:
            return {}
        return {"duration_ms": max(0, int((now - self.started_at).total_seconds() * 1000))}


def load_claimed(execution: Execution, claim_token: uuid.UUID) -> Claimed:
    """What the runtime needs; `execution` carries its workflow (select_related) and the
    values its claim just wrote."""
    workflow = execution.workflow
    if workflow.version == execution.workflow_version:
        definition = workflow.definition
    else:
        version = (
            WorkflowVersion.objects.filter(workflow_id=execution.workflow_id, version=execution.workflow_version)
            .values_list("definition", flat=True)
            .first()
        )
        definition = version if version is not None else workflow.definition
    remaining = (execution.deadline_at - timezone.now()).total_seconds() if execution.deadline_at else 3600.0
    return Claimed(
        execution_id=execution.id,
        claim_token=claim_token,
        workflow_id=execution.workflow_id,
        organization_id=execution.organization_id,
        definition=definition,
        input=execution.input or {},
        deadline_seconds=max(0.0, remaining),
        started_at=execution.started_at,
        # A definition that names no secret needs no read of the secret store.
        secret_names=referenced_secrets(definition),
        reused_outputs=resume.reused_outputs(execution, definition),
        idempotency_base=resume.idempotency_base(execution),
    )


def load_secrets(claimed: Claimed) -> dict[str, str]:
    if not claimed.secret_names:
        return {}
    return load_organization_secrets(claimed.organization_id, claimed.secret_names)


class DatabaseStepRecorder:
    """Writes step rows under the supervisor's claim (the step-start rule)."""

    def __init__(self, claimed: Claimed):
        self.claimed = claimed
        self.steps: dict[str, Step] = {}

    def start_step(self, step_id: str, action: str, position: int) -> bool:
        step = with_db_retry(
            start_step,
            self.claimed.execution_id,
            self.claimed.claim_token,
            step_id=step_id,
            action=action,
            position=position,
        )
        if step is None:
            return False
        self.steps[step_id] = step
        return True

    def finish_step(
        self,
        step_id: str,
        *,
        status: str,
        output: Any = None,
        error_type: str = "",
        error_message: str = "",
        attempts: list | None = None,
        reused: bool = False,
    ) -> None:
        step = self.steps.get(step_id)
        if attempts:
            _count_attempts(attempts, status)
        if step is not None:
            with_db_retry(
                finish_step,
                step,
                status=status,
                output=output,
                error_type=error_type,
                error_message=error_message,
                attempts=attempts,
                reused=reused,
            )


def _count_attempts(attempts: list, status: str) -> None:
    for record in attempts:
        outcome = "success" if isinstance(record, dict) and record.get("outcome") == "success" else "error"
        metrics.STEP_ATTEMPTS.labels(outcome=outcome).inc()
    if len(attempts) > 1:
        metrics.STEP_RETRIES.labels(outcome="recovered" if status == "success" else "exhausted").inc()


def complete(claimed: Claimed, output: Any) -> bool:
    now = timezone.now()
    result = with_db_retry(
        transition,
        claimed.execution_id,
        S.SUCCESS,
        actor=Actor.RUNTIME,
        expected=[S.RUNNING, S.SYSTEM_ERROR],
        claim_token=claimed.claim_token,
        # The outputs are in the step rows already: the run keeps which one is its result.
        values={"output": stored_form(output), **claimed.finishing(now)},
        now=now,
        log_context=claimed.log_context,
    )
    if not result.won:
        metrics.LATE_RESULTS_DISCARDED.labels(outcome="success").inc()
        logger.warning(
            "late success discarded", extra={"event": "late_result", "execution_id": str(claimed.execution_id)}
        )
    _observe_duration(claimed, result.won, S.SUCCESS, "none", now)
    return result.won


def record_failure(claimed: Claimed, classification: Classification, *, condition: Q | None = None) -> bool:
    now = timezone.now()
    status = status_for_error_type(classification.error_type)
    values = claimed.finishing(now)
    if classification.cause_code:
        values["error_cause_code"] = classification.cause_code
    result = with_db_retry(
        fail,
        claimed.execution_id,
        classification,
        actor=Actor.RUNTIME,
        expected=[S.RUNNING],
        claim_token=claimed.claim_token,
        condition=condition,
        values=values,
        now=now,
        log_context=claimed.log_context,
    )
    if result.won:
        metrics.CLASSIFIED.labels(rule=classification.rule, error_type=classification.error_type).inc()
        if classification.code == Code.C0001:
            metrics.UNCLASSIFIED.labels(rule=classification.rule).inc()
        if status == S.SYSTEM_ERROR:
            metrics.observe_detection(classification.code, "supervisor", detection_reference(claimed.execution_id), now)
    else:
        metrics.LATE_RESULTS_DISCARDED.labels(outcome=classification.error_type).inc()
        logger.warning(
            "late failure discarded",
            extra={
                "event": "late_result",
                "execution_id": str(claimed.execution_id),
                "error_code": classification.code,
            },
        )
    _observe_duration(claimed, result.won, status, classification.error_type, now)
    return result.won


def record_shutdown(claimed: Claimed) -> bool:
    """The worker is shutting down and its grace period is over: write the run now,
    P-0001 if no step started (safe to re-run), else P-0003 "worker shut down". The CAS
    re-checks the step condition, so a step starting meanwhile cannot be misreported."""
    if not Step.objects.filter(execution_id=claimed.execution_id).exists():
        return record_failure(
            claimed,
            system_fault(Code.P0001, "worker shut down before the first step", rule="shutdown"),
            condition=no_step_started(),
        )
    return record_failure(
        claimed, system_fault(Code.P0003, "worker shut down", rule="shutdown"), condition=some_step_started()
    )


def detection_reference(execution_id: uuid.UUID | str) -> datetime | None:
    """A run's last sign of life, from which conveyor_detection_latency_seconds counts: its
    last heartbeat, else its start, else when it was queued (a run that never started)."""
    try:
        row = (
            Execution.objects.filter(pk=execution_id)
            .values_list("heartbeat_at", "started_at", "queued_at", "created_at")
            .first()
        )
    except DatabaseError:  # a metric is never worth failing the write it follows
        logger.warning("detection latency not observed", exc_info=True)
        return None
    return next((moment for moment in row if moment is not None), None) if row else None


def _observe_duration(claimed: Claimed, won: bool, status: str, error_type: str, now: datetime) -> None:
    if won and claimed.started_at is not None:
        seconds = max(0.0, (now - claimed.started_at).total_seconds())
        metrics.EXECUTION_DURATION.labels(status=status, error_type=error_type or "none").observe(seconds)
