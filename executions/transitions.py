"""The one function that writes a run's status, and the one that creates a run.

Every status write is a compare-and-swap (`UPDATE ... WHERE id = %s AND status = %s AND
<move condition>`): the row count says who won. A loser is logged and counted, never
overwritten. The allowed moves are one table, `MOVES`; every win appends a row to the
transition log in the same transaction.

A terminal status is final except for three moves (DESIGN.md §2), all in the table:
healing a P-0005 run whose message arrived after all, healing a reaped P-0003/E-0001 run
whose own claim later committed success, and an operator's reclassification.

A run's first terminal status is counted once, on commit, in conveyor_runs_finished_total
(the error budget's SLI, docs/decisions/0011-error-budget.md): a lost or rolled-back CAS,
and a terminal write after a self-heal or a reclassification, count nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from executions import metrics
from executions.models import Execution, Step, StepStatus, Transition
from failures.catalogue import HEALABLE_TO_RUNNING, HEALABLE_TO_SUCCESS
from failures.classifier import Classification
from failures.statuses import ALL_STATUSES, TERMINAL, Actor, ExecutionStatus, TriggerType, status_for_error_type
from workflows.models import Workflow

logger = logging.getLogger("conveyor.transitions")
S = ExecutionStatus
A = Actor


@dataclass(frozen=True)
class MoveContext:
    actor: str
    claim_token: uuid.UUID | None


def _no_rerun_child() -> Q:
    return ~Q(Exists(Execution.objects.filter(rerun_of=OuterRef("pk"))))


def _late_message_heal(ctx: MoveContext) -> Q:
    return Q(error_code__in=sorted(HEALABLE_TO_RUNNING)) & _no_rerun_child()


def _late_success_heal(ctx: MoveContext) -> Q:
    if ctx.claim_token is None:
        return Q(pk__in=[])  # never: only the very claim the reaper gave up on may heal
    return (
        Q(error_code__in=sorted(HEALABLE_TO_SUCCESS), status_actor=A.REAPER, claim_token=ctx.claim_token)
        & _no_rerun_child()
    )


def _own_claim(ctx: MoveContext) -> Q:
    # The supervisor finishing a run must hold its claim; the reaper and an operator act
    # on whatever claim is current.
    if ctx.actor in (A.RUNTIME, A.CONSUMER) and ctx.claim_token is not None:
        return Q(claim_token=ctx.claim_token)
    return Q()


@dataclass(frozen=True)
class Move:
    name: str
    from_status: str
    to_status: str
    actors: frozenset[str]
    condition: Callable[[MoveContext], Q] = field(default=lambda ctx: Q())

    @property
    def leaves_terminal(self) -> bool:
        return self.from_status in TERMINAL


def _m(
    name: str, frm: str, to: str, actors: Iterable[str], condition: Callable[[MoveContext], Q] | None = None
) -> Move:
    return Move(name, frm, to, frozenset(actors), condition or (lambda ctx: Q()))


# The table of allowed moves. Order matters where two moves reach the same status: the
# ordinary move is tried before a heal.
MOVES: tuple[Move, ...] = (
    _m("claim", S.PENDING, S.RUNNING, [A.CONSUMER]),
    _m("heal-late-message", S.SYSTEM_ERROR, S.RUNNING, [A.CONSUMER], _late_message_heal),
    _m("skip", S.PENDING, S.SKIPPED, [A.CONSUMER]),
    _m("fail-before-start", S.PENDING, S.SYSTEM_ERROR, [A.PRODUCER, A.CONSUMER, A.REAPER]),
    _m("cancel", S.PENDING, S.CANCELLED, [A.API, A.OPERATOR]),
    _m("complete", S.RUNNING, S.SUCCESS, [A.RUNTIME, A.CONSUMER], _own_claim),
    _m("fail", S.RUNNING, S.ERROR, [A.RUNTIME, A.CONSUMER], _own_claim),
    _m("fail", S.RUNNING, S.SYSTEM_ERROR, [A.RUNTIME, A.CONSUMER, A.REAPER], _own_claim),
    _m("cancel", S.RUNNING, S.CANCELLED, [A.API, A.OPERATOR]),
    _m("heal-late-success", S.SYSTEM_ERROR, S.SUCCESS, [A.RUNTIME, A.CONSUMER], _late_success_heal),
    _m("reclassify", S.ERROR, S.SYSTEM_ERROR, [A.OPERATOR]),
    _m("reclassify", S.SYSTEM_ERROR, S.ERROR, [A.OPERATOR]),
    _m("reclassify", S.ERROR, S.ERROR, [A.OPERATOR]),
    _m("reclassify", S.SYSTEM_ERROR, S.SYSTEM_ERROR, [A.OPERATOR]),
)
SELF_HEALS = frozenset({"heal-late-message", "heal-late-success"})


def _reachable_after_terminal() -> frozenset[str]:
    """The non-terminal statuses a run can be in after it was terminal once (today the
    `running` of heal-late-message), from the table: a terminal write from one of them may
    be the run's second."""
    reached: set[str] = set()
    frontier = {m.to_status for m in MOVES if m.leaves_terminal} - TERMINAL
    while frontier:
        reached |= frontier
        frontier = {m.to_status for m in MOVES if m.from_status in frontier} - TERMINAL - reached
    return frozenset(reached)


AFTER_TERMINAL: frozenset[str] = _reachable_after_terminal()


def allowed_moves(to_status: str, actor: str) -> list[Move]:
    return [m for m in MOVES if m.to_status == to_status and actor in m.actors]


def is_allowed(from_status: str, to_status: str, actor: str) -> bool:
    return any(m.from_status == from_status for m in allowed_moves(to_status, actor))


@dataclass(frozen=True)
class TransitionResult:
    won: bool
    execution_id: uuid.UUID
    to_status: str
    from_status: str | None = None
    move: str | None = None

    def __bool__(self) -> bool:
        return self.won


class TransitionRefused(ValueError):
    """The call itself is malformed (no move in the table could ever apply)."""


def transition(
    execution_id: uuid.UUID | str,
    to_status: str,
    *,
    actor: str,
    expected: Iterable[str] | None = None,
    classification: Classification | None = None,
    reason: str = "",
    claim_token: uuid.UUID | None = None,
    condition: Q | None = None,
    values: dict | None = None,
    now: datetime | None = None,
    log_context: dict | None = None,
) -> TransitionResult:
    """Move a run to `to_status` if, and only if, its current status allows it.

    `expected` narrows the from-statuses tried; `claim_token` is the caller's claim (the
    supervisor's own, or the token a heal must match); `condition` adds a predicate the
    row must satisfy in the same UPDATE (the reaper's "no step started"); `values` are
    extra columns written with the status (a claim's fresh token, started_at...);
    `log_context` (workflow_id, organization_id) saves a read for the log line when the
    caller already knows them.
    """
    if to_status not in ALL_STATUSES:
        raise TransitionRefused(f"unknown status {to_status!r}")
    if actor not in A.values:
        raise TransitionRefused(f"unknown actor {actor!r}")
    if classification is not None and status_for_error_type(classification.error_type) != to_status:
        raise TransitionRefused(
            f"{classification.error_type} error must end as {status_for_error_type(classification.error_type)}, "
            f"not {to_status} (the single rule)"
        )
    if to_status in (S.ERROR, S.SYSTEM_ERROR) and classification is None:
        raise TransitionRefused(f"a move to {to_status} needs a classification")
    moves = allowed_moves(to_status, actor)
    if expected is not None:
        wanted = set(expected)
        moves = [m for m in moves if m.from_status in wanted]
    if not moves:
        raise TransitionRefused(f"no move to {to_status} for actor {actor} from {sorted(expected or [])}")
    if any(m.name == "reclassify" for m in moves) and not reason:
        raise TransitionRefused("an operator's reclassification needs a reason")

    now = now or timezone.now()
    ctx = MoveContext(actor=actor, claim_token=claim_token)
    update: dict[str, object] = {"status": to_status, "status_actor": actor}
    if classification is not None:
        update.update(
            error_type=classification.error_type,
            error_category=classification.category,
            error_code=classification.code,
            error_message=classification.message[:10_000],
            classifier_rule=classification.rule,
        )
    elif to_status in (S.SUCCESS, S.RUNNING, S.CANCELLED, S.SKIPPED):
        update.update(error_type="", error_category="", error_code="", error_message="", classifier_rule="")
    if to_status in TERMINAL:
        update["finished_at"] = now
    update.update(values or {})

    with transaction.atomic():
        for move in moves:
            if move.name in SELF_HEALS:
                # Wait for a child run being created for this run (executions.rerun.enqueue_child
                # holds the parent's row lock until it commits): the UPDATE below then sees the
                # committed child and refuses to heal, so a run and its re-run never both run.
                list(Execution.objects.select_for_update().filter(pk=execution_id).values_list("pk", flat=True))
            where = Q(pk=execution_id, status=move.from_status) & move.condition(ctx)
            if condition is not None:
                where &= condition
            rows = Execution.objects.filter(where).update(**update)
            if rows:
                first_terminal = to_status in TERMINAL and _is_first_terminal(execution_id, move)
                _record(
                    execution_id,
                    move,
                    actor,
                    reason,
                    classification,
                    claim_token,
                    now,
                    to_status,
                    duration_known="duration_ms" in update,
                    log_context=log_context,
                )
                if first_terminal:
                    # Counted when the status is committed: a caller's outer transaction
                    # that rolls back takes the status back, and must take the count too.
                    transaction.on_commit(metrics.RUNS_FINISHED.labels(status=to_status).inc)
                return TransitionResult(True, _as_uuid(execution_id), to_status, move.from_status, move.name)
    metrics.TRANSITION_CONFLICTS.labels(to_status=to_status, actor=actor).inc()
    logger.info(
        "transition lost",
        extra={"event": "transition_lost", "execution_id": str(execution_id), "to_status": to_status, "actor": actor},
    )
    return TransitionResult(False, _as_uuid(execution_id), to_status)


def create(
    workflow: Workflow,
    *,
    trigger_type: str,
    dispatch_key: str | None,
    input: dict | None,
    rerun_of: Execution | None = None,
    attempt: int = 1,
    reason: str = "",
) -> Execution | None:
    """Create a run `pending`, with the `create` row of its transition log, and commit;
    None when the dispatch key exists already (the existing run is the one)."""
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
    # One log line per transition, the create included.
    logger.info(
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


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _is_first_terminal(execution_id: uuid.UUID | str, move: Move) -> bool:
    """Whether the terminal status this CAS just wrote is the run's first (the SLI counts
    every run once). Called after the UPDATE won and before its log row is written."""
    if move.leaves_terminal:
        return False
    if move.from_status not in AFTER_TERMINAL:
        return True  # no move leads back to it (pending): the run was never terminal
    # The run's row is locked by the UPDATE until commit, so no other writer of this run
    # can add to its log meanwhile; only a self-healed run has a terminal row in it.
    return not Transition.objects.filter(execution_id=execution_id, to_status__in=TERMINAL).exists()


def _record(
    execution_id: uuid.UUID | str,
    move: Move,
    actor: str,
    reason: str,
    classification: Classification | None,
    claim_token: uuid.UUID | None,
    now: datetime,
    to_status: str,
    *,
    duration_known: bool = False,
    log_context: dict | None = None,
) -> None:
    if to_status in TERMINAL and not duration_known:
        # Duration in a second statement: portable across SQLite and PostgreSQL.
        started = Execution.objects.filter(pk=execution_id).values_list("started_at", "created_at").first()
        if started:
            origin = started[0] or started[1]
            Execution.objects.filter(pk=execution_id).update(
                duration_ms=max(0, int((now - origin).total_seconds() * 1000))
            )
    code = classification.code if classification else ""
    Transition.objects.create(
        execution_id=execution_id,
        from_status=move.from_status,
        to_status=to_status,
        actor=actor,
        reason=(reason or (classification.message if classification else ""))[:500],
        error_code=code,
        move=move.name,
        claim_token=claim_token,
        at=now,
    )
    metrics.TRANSITIONS.labels(from_status=move.from_status, to_status=to_status).inc()
    if move.name in SELF_HEALS:
        metrics.SELF_HEALS.labels(move=move.name).inc()
    if not logger.isEnabledFor(logging.INFO):
        return
    row = log_context or Execution.objects.filter(pk=execution_id).values("workflow_id", "organization_id").first()
    row = row or {}
    logger.info(
        "transition %s -> %s",
        move.from_status,
        to_status,
        extra={
            "event": "transition",
            "execution_id": str(execution_id),
            "workflow_id": row.get("workflow_id"),
            "organization_id": row.get("organization_id"),
            "from_status": move.from_status,
            "status": to_status,
            "move": move.name,
            "actor": actor,
            "error_type": classification.error_type if classification else "",
            "error_category": classification.category if classification else "",
            "error_code": code,
        },
    )


def fail(
    execution_id: uuid.UUID | str,
    classification: Classification,
    *,
    actor: str,
    expected: Iterable[str] | None = None,
    claim_token: uuid.UUID | None = None,
    condition: Q | None = None,
    reason: str = "",
    now: datetime | None = None,
    values: dict | None = None,
    log_context: dict | None = None,
) -> TransitionResult:
    """Finish a run with a failure; its status follows the single rule."""
    return transition(
        execution_id,
        status_for_error_type(classification.error_type),
        actor=actor,
        expected=expected,
        classification=classification,
        claim_token=claim_token,
        condition=condition,
        reason=reason,
        now=now,
        values=values,
        log_context=log_context,
    )


def reclassify(
    execution_id: uuid.UUID | str, classification: Classification, *, reason: str, operator: str = ""
) -> TransitionResult:
    """An operator's override: type, category and code change, the status follows."""
    who = f"{operator}: " if operator else ""
    return fail(
        execution_id,
        classification,
        actor=A.OPERATOR,
        expected=(S.ERROR, S.SYSTEM_ERROR),
        reason=f"{who}{reason}",
    )


def no_step_started() -> Q:
    return ~Q(Exists(Step.objects.filter(execution=OuterRef("pk"))))


def some_step_started() -> Q:
    return Q(Exists(Step.objects.filter(execution=OuterRef("pk"))))


def _from_conditions(to_status: str, ctx: MoveContext) -> Q:
    """Where the moves of the table to `to_status` for `ctx.actor` may start from: the OR
    of their from-statuses and conditions."""
    where = Q(pk__in=[])
    for move in allowed_moves(to_status, ctx.actor):
        where |= Q(status=move.from_status) & move.condition(ctx)
    return where


def claimable() -> Q:
    """The runs a consumer may claim: where the table's moves to `running` start (a
    pending run, or a P-0005 the late message may heal). The consumer reads it with the
    run, in the same query, before its guards and its concurrency check."""
    return _from_conditions(S.RUNNING, MoveContext(actor=A.CONSUMER, claim_token=None))


def may_run_steps(claim_token: uuid.UUID) -> Q:
    """A step may start, and the heartbeat be refreshed, only where the supervisor's own
    claim could still finish the run with success: the table's moves to `success` (the
    run is running under this claim, or it is a reaped P-0003/E-0001 this very claim may
    heal)."""
    return Q(claim_token=claim_token) & _from_conditions(
        S.SUCCESS, MoveContext(actor=A.RUNTIME, claim_token=claim_token)
    )


def start_step(
    execution_id: uuid.UUID | str,
    claim_token: uuid.UUID,
    *,
    step_id: str,
    action: str,
    position: int,
    now: datetime | None = None,
) -> Step | None:
    """Record a step as started, or refuse (None) when the claim no longer owns the run.

    The UPDATE both checks the rule and locks the run's row until commit, and it
    refreshes heartbeat_at: a reaper's concurrent P-0001 CAS ("stale and no step") either
    ran first (and this refuses) or re-checks a fresh heartbeat and does nothing.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rows = (
            Execution.objects.filter(pk=execution_id)
            .filter(may_run_steps(claim_token))
            .update(heartbeat_at=now, steps_started=F("steps_started") + 1)
        )
        if not rows:
            metrics.STEPS_REFUSED.inc()
            return None
        return Step.objects.create(
            execution_id=execution_id,
            step_id=step_id,
            action=action,
            position=position,
            status=StepStatus.RUNNING,
            claim_token=claim_token,
            started_at=now,
        )


def finish_step(
    step: Step,
    *,
    status: str,
    output: object = None,
    error_type: str = "",
    error_message: str = "",
    now: datetime | None = None,
    attempts: list | None = None,
    reused: bool = False,
) -> None:
    now = now or timezone.now()
    # Only what there is: a step without a retry policy keeps attempts empty.
    extra: dict[str, object] = {"attempts": attempts} if attempts is not None else {}
    if reused:
        extra["reused"] = True
    counters: dict[str, str] = {StepStatus.SUCCESS: "steps_succeeded", StepStatus.ERROR: "steps_failed"}
    counter = counters.get(status)
    with transaction.atomic():  # one commit for the step and its run's counters
        Step.objects.filter(pk=step.pk).update(
            status=status,
            output=output,
            error_type=error_type,
            error_message=error_message[:10_000],
            finished_at=now,
            **extra,
        )
        if counter:
            Execution.objects.filter(pk=step.execution_id).update(**{counter: F(counter) + 1})
        elif status == StepStatus.SKIPPED:
            # A branch not taken is recorded for the run detail but was never started.
            Execution.objects.filter(pk=step.execution_id).update(steps_started=F("steps_started") - 1)


def touch_heartbeat(execution_id: uuid.UUID | str, claim_token: uuid.UUID, now: datetime | None = None) -> bool:
    """Refresh heartbeat_at for the supervisor's own claim; False once it lost the run."""
    return bool(
        Execution.objects.filter(pk=execution_id, claim_token=claim_token)
        .filter(may_run_steps(claim_token))
        .update(heartbeat_at=now or timezone.now())
    )
