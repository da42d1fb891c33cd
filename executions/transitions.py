"""The one function that writes a run's status, and the one that creates a run.

Every status write is a compare-and-swap (`UPDATE ... WHERE id = %s AND status = %s AND
<move condition>`): the row count says who won. A loser is logged and counted, never
overwritten. The allowed moves are one table, `MOVES`; every win appends a row to the
transition log in the same transaction.

On PostgreSQL each write is one statement (docs/decisions/0016): the CAS, its log row,
the first-terminal check and, for a terminal status, the wait endpoint's NOTIFY are one
data-modifying CTE, compiled by Django from the same conditions; creating a run, and a
step's start and finish, are one statement each too. SQLite keeps the portable path, a
statement each in one transaction, behind the same functions.

A terminal status is final except for three moves (DESIGN.md §2), all in the table:
healing a P-0005 run whose message arrived after all, healing a reaped P-0003/E-0001 run
whose own claim later committed success, and an operator's reclassification.

A run's first terminal status is counted once, on commit, in conveyor_runs_finished_total
(the error budget's SLI, docs/decisions/0011-error-budget.md): a lost or rolled-back CAS,
and a terminal write after a self-heal or a reclassification, count nothing.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connections, models, transaction
from django.db.models import Exists, F, OuterRef, PositiveBigIntegerField, Q
from django.db.models.expressions import RawSQL
from django.db.models.sql import InsertQuery, UpdateQuery
from django.utils import timezone

from executions import metrics
from executions.models import Execution, Step, StepStatus, Transition
from executions.notify import RUN_STATUS_CHANNEL
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
    # The supervisor finishing a run must hold its claim, and so must a worker's failure
    # hook writing for its dead pool process; the reaper and an operator act on whatever
    # claim is current.
    if ctx.actor in (A.RUNTIME, A.CONSUMER, A.HOOK) and ctx.claim_token is not None:
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
    _m("fail", S.RUNNING, S.SYSTEM_ERROR, [A.RUNTIME, A.CONSUMER, A.HOOK, A.REAPER], _own_claim),
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

    one_statement = _one_statement()
    if one_statement and to_status in TERMINAL and "duration_ms" not in update:
        update["duration_ms"] = _duration_since_start(now)
    duration_known = "duration_ms" in update
    # On PostgreSQL each try is one autocommitted statement (a CAS: a lost one changes
    # nothing), and a heal's lock and its statement one short transaction; elsewhere the
    # tries, their reads and their log rows share one transaction, as they always did.
    with contextlib.nullcontext() if one_statement else transaction.atomic():
        for move in moves:
            heal = move.name in SELF_HEALS
            with transaction.atomic() if heal and one_statement else contextlib.nullcontext():
                if heal:
                    # Wait for a child run being created for this run (executions.rerun.enqueue_child
                    # holds the parent's row lock until it commits): the statement below then sees the
                    # committed child and refuses to heal, so a run and its re-run never both run.
                    list(Execution.objects.select_for_update().filter(pk=execution_id).values_list("pk", flat=True))
                where = Q(pk=execution_id, status=move.from_status) & move.condition(ctx)
                if condition is not None:
                    where &= condition
                log_row = _TransitionRow(execution_id, move, to_status, actor, reason, classification, claim_token, now)
                if one_statement:
                    won = _cas_one_statement(where, update, log_row)
                else:
                    won = _cas_portable(where, update, log_row, duration_known=duration_known)
            if won is not None:
                _after_win(log_row, won, log_context)
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
    execution = Execution(
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
    created = _TransitionRow(
        execution.id, _CREATE, ExecutionStatus.PENDING, Actor.PRODUCER, reason or trigger_type, None, None, now
    )
    try:
        if _one_statement():
            # Inside a caller's transaction, a savepoint: a duplicate key must not abort it.
            with (
                transaction.atomic() if connections[Execution.objects.db].in_atomic_block else contextlib.nullcontext()
            ):
                _create_one_statement(execution, created)
        else:
            with transaction.atomic():
                execution.save(force_insert=True)
                Transition.objects.create(
                    execution=execution,
                    from_status="",
                    to_status=ExecutionStatus.PENDING,
                    actor=Actor.PRODUCER,
                    move="create",
                    reason=created.logged_reason,
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


# The create row's "move": from nothing to pending.
_CREATE = Move("create", "", ExecutionStatus.PENDING, frozenset({Actor.PRODUCER}))


def _create_one_statement(execution: Execution, row: _TransitionRow) -> None:
    """INSERT the run and its `create` log row in one statement (a data-modifying CTE);
    a duplicate dispatch key is the same IntegrityError as a plain INSERT's."""
    alias = Execution.objects.db
    connection = connections[alias]
    fields = [f for f in Execution._meta.local_concrete_fields]
    query = InsertQuery(Execution)
    query.insert_values(fields, [execution])
    ((insert_sql, params),) = query.get_compiler(alias).as_sql()
    transition_table = connection.ops.quote_name(Transition._meta.db_table)
    sql = (
        f"WITH created AS ({insert_sql} RETURNING id) "
        f"INSERT INTO {transition_table} ({_TRANSITION_COLUMNS}) "
        "SELECT created.id, %s, %s, %s, %s, %s, %s, %s::uuid, %s::timestamptz FROM created"
    )
    params = [*params, "", row.to_status, row.actor, row.logged_reason, "", row.move.name, None, row.at]
    with transaction.mark_for_rollback_on_error(alias), connection.cursor() as cursor:
        cursor.execute(sql, params)
    execution._state.adding = False
    execution._state.db = alias


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


@dataclass(frozen=True)
class _TransitionRow:
    """A won move's row of the transition log, and what its log line and metrics say."""

    execution_id: uuid.UUID | str
    move: Move
    to_status: str
    actor: str
    reason: str
    classification: Classification | None
    claim_token: uuid.UUID | None
    at: datetime

    @property
    def error_code(self) -> str:
        return self.classification.code if self.classification else ""

    @property
    def logged_reason(self) -> str:
        return (self.reason or (self.classification.message if self.classification else ""))[:500]

    @property
    def may_be_first_terminal(self) -> bool:
        """Whether this move's terminal status may be the run's first: False when it leaves
        a terminal status (a reclassification, a heal); when it starts from a status no
        move leads back to after a terminal one (pending), certainly the first; else the
        log says (only a self-healed run has a terminal row in it)."""
        return self.to_status in TERMINAL and not self.move.leaves_terminal

    @property
    def certainly_first_terminal(self) -> bool:
        return self.may_be_first_terminal and self.move.from_status not in AFTER_TERMINAL


@dataclass(frozen=True)
class _Won:
    first_terminal: bool
    log_context: dict | None = None  # workflow_id and organization_id, when the statement returned them


def _one_statement() -> bool:
    """PostgreSQL writes a CAS, its log row (and the first-terminal check, and the wait
    endpoint's notification) in one statement; SQLite keeps the portable path."""
    return connections[Execution.objects.db].vendor == "postgresql"


def _duration_since_start(now: datetime) -> RawSQL:
    # The terminal write's duration from the row's own start, in the same UPDATE.
    return RawSQL(
        'GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (%s::timestamptz - COALESCE("started_at", "created_at"))) * 1000))',
        [now],
        output_field=PositiveBigIntegerField(),
    )


def _update_sql(model: type[models.Model], where: Q, values: dict) -> tuple[str, list]:
    """The UPDATE Django would run for `model.objects.filter(where).update(**values)`,
    to be embedded in a larger statement (a data-modifying CTE)."""
    query = model._default_manager.filter(where).query.chain(UpdateQuery)
    assert isinstance(query, UpdateQuery)  # chain(klass) returns that class; the stubs say Query
    query.add_update_values(values)
    sql, params = query.get_compiler(model._default_manager.db).as_sql()
    return sql, list(params)


_TRANSITION_COLUMNS = (
    '"execution_id", "from_status", "to_status", "actor", "reason", "error_code", "move", "claim_token", "at"'
)


def _cas_one_statement(where: Q, update: dict, row: _TransitionRow) -> _Won | None:
    """The CAS, its transition-log row, the first-terminal check and, for a terminal
    status, the wait endpoint's NOTIFY, as one data-modifying CTE. The row count (a row
    or none) says who won, as the UPDATE's did. The final SELECT reads the log as it was
    before this statement's INSERT (one snapshot for all its parts): what
    `_is_first_terminal` asks. No writer of this run can add to its log meanwhile: a
    terminal row is written only with a status change this UPDATE would have to wait for
    and re-check."""
    try:
        update_sql, params = _update_sql(Execution, where, update)
    except EmptyResultSet:  # a condition that matches nothing (a heal without a claim): lost
        return None
    connection = connections[Execution.objects.db]
    execution_table = connection.ops.quote_name(Execution._meta.db_table)
    transition_table = connection.ops.quote_name(Transition._meta.db_table)
    if row.certainly_first_terminal:
        first = "TRUE"
    elif row.may_be_first_terminal:
        terminal = ", ".join(["%s"] * len(TERMINAL))
        first = (
            f"NOT EXISTS (SELECT 1 FROM {transition_table} t "
            f"WHERE t.execution_id = moved.id AND t.to_status IN ({terminal}))"
        )
    else:
        first = "FALSE"
    # The wait endpoint's wake-up (executions/notify.py): delivered on commit, never for a
    # rolled-back write; CONVEYOR_WAIT_NOTIFY off sends none.
    notifying = row.to_status in TERMINAL and settings.CONVEYOR_WAIT_NOTIFY
    notify = ", pg_notify(%s, moved.id::text)" if notifying else ""
    sql = (
        f"WITH moved AS ({update_sql} RETURNING {execution_table}.id, {execution_table}.workflow_id, "
        f"{execution_table}.organization_id), "
        f"logged AS (INSERT INTO {transition_table} ({_TRANSITION_COLUMNS}) "
        "SELECT moved.id, %s, %s, %s, %s, %s, %s, %s::uuid, %s::timestamptz FROM moved) "
        f"SELECT moved.workflow_id, moved.organization_id, {first}{notify} FROM moved"
    )
    params += [
        row.move.from_status,
        row.to_status,
        row.actor,
        row.logged_reason,
        row.error_code,
        row.move.name,
        row.claim_token,
        row.at,
    ]
    if row.may_be_first_terminal and not row.certainly_first_terminal:
        params += sorted(TERMINAL)
    if notify:
        params.append(RUN_STATUS_CHANNEL)
    with transaction.mark_for_rollback_on_error(Execution.objects.db), connection.cursor() as cursor:
        cursor.execute(sql, params)
        won = cursor.fetchone()
    if won is None:
        return None
    return _Won(bool(won[2]), {"workflow_id": won[0], "organization_id": won[1]})


def _cas_portable(where: Q, update: dict, row: _TransitionRow, *, duration_known: bool) -> _Won | None:
    """The CAS and its log row in the caller's transaction, a statement each (SQLite)."""
    if not Execution.objects.filter(where).update(**update):
        return None
    first_terminal = row.may_be_first_terminal and (row.certainly_first_terminal or _no_terminal_logged(row))
    if row.to_status in TERMINAL and not duration_known:
        started = Execution.objects.filter(pk=row.execution_id).values_list("started_at", "created_at").first()
        if started:
            origin = started[0] or started[1]
            Execution.objects.filter(pk=row.execution_id).update(
                duration_ms=max(0, int((row.at - origin).total_seconds() * 1000))
            )
    Transition.objects.create(
        execution_id=row.execution_id,
        from_status=row.move.from_status,
        to_status=row.to_status,
        actor=row.actor,
        reason=row.logged_reason,
        error_code=row.error_code,
        move=row.move.name,
        claim_token=row.claim_token,
        at=row.at,
    )
    return _Won(first_terminal)


def _no_terminal_logged(row: _TransitionRow) -> bool:
    # Called after the UPDATE won and before its log row is written: the run's row is
    # locked by the UPDATE until commit, so no other writer of this run can add to its
    # log meanwhile.
    return not Transition.objects.filter(execution_id=row.execution_id, to_status__in=TERMINAL).exists()


def _after_win(row: _TransitionRow, won: _Won, log_context: dict | None) -> None:
    metrics.TRANSITIONS.labels(from_status=row.move.from_status, to_status=row.to_status).inc()
    if row.move.name in SELF_HEALS:
        metrics.SELF_HEALS.labels(move=row.move.name).inc()
    if won.first_terminal:
        # Counted when the status is committed: a caller's outer transaction that rolls
        # back takes the status back, and must take the count too.
        transaction.on_commit(metrics.RUNS_FINISHED.labels(status=row.to_status).inc)
    if not logger.isEnabledFor(logging.INFO):
        return
    context = (
        log_context
        or won.log_context
        or Execution.objects.filter(pk=row.execution_id).values("workflow_id", "organization_id").first()
        or {}
    )
    classification = row.classification
    logger.info(
        "transition %s -> %s",
        row.move.from_status,
        row.to_status,
        extra={
            "event": "transition",
            "execution_id": str(row.execution_id),
            "workflow_id": context.get("workflow_id"),
            "organization_id": context.get("organization_id"),
            "from_status": row.move.from_status,
            "status": row.to_status,
            "move": row.move.name,
            "actor": row.actor,
            "error_type": classification.error_type if classification else "",
            "error_category": classification.category if classification else "",
            "error_code": row.error_code,
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
    step = Step(
        execution_id=execution_id,
        step_id=step_id,
        action=action,
        position=position,
        status=StepStatus.RUNNING,
        claim_token=claim_token,
        started_at=now,
    )
    allowed = Q(pk=execution_id) & may_run_steps(claim_token)
    started = {"heartbeat_at": now, "steps_started": F("steps_started") + 1}
    if _one_statement():
        if not _start_step_one_statement(step, allowed, started):
            metrics.STEPS_REFUSED.inc()
            return None
        return step
    with transaction.atomic():
        if not Execution.objects.filter(allowed).update(**started):
            metrics.STEPS_REFUSED.inc()
            return None
        step.save(force_insert=True)
        return step


def _start_step_one_statement(step: Step, allowed: Q, started: dict) -> bool:
    """The step-start rule's UPDATE (which locks the run's row) and the step's INSERT as
    one statement; False, and no step row, when the claim no longer owns the run."""
    alias = Execution.objects.db
    connection = connections[alias]
    update_sql, params = _update_sql(Execution, allowed, started)
    execution_table = connection.ops.quote_name(Execution._meta.db_table)
    fields = [f for f in Step._meta.local_concrete_fields if not f.primary_key]
    query = InsertQuery(Step)
    query.insert_values(fields, [step])
    ((insert_sql, insert_params),) = query.get_compiler(alias).as_sql()
    # INSERT ... VALUES (...) becomes INSERT ... SELECT ... FROM allowed: no row when
    # refused. A SELECT's parameters carry no column type (a NULL would be text): cast.
    head = insert_sql.split(" VALUES ", 1)[0]
    typed = ", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in fields)
    sql = (
        f"WITH allowed AS ({update_sql} RETURNING {execution_table}.id) {head} SELECT {typed} FROM allowed RETURNING id"
    )
    with transaction.mark_for_rollback_on_error(alias), connection.cursor() as cursor:
        cursor.execute(sql, [*params, *insert_params])
        row = cursor.fetchone()
    if row is None:
        return False
    step.pk = row[0]
    step._state.adding = False
    step._state.db = alias
    return True


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
    done = {
        "status": status,
        "output": output,
        "error_type": error_type,
        "error_message": error_message[:10_000],
        "finished_at": now,
        **extra,
    }
    counter_sql = ""
    if counter:
        counter_sql = f'"{counter}" = "{counter}" + 1'
    elif status == StepStatus.SKIPPED:
        # A branch not taken is recorded for the run detail but was never started.
        counter_sql = '"steps_started" = "steps_started" - 1'
    if _one_statement():
        _finish_step_one_statement(step, done, counter_sql)
        return
    with transaction.atomic():  # one commit for the step and its run's counters
        Step.objects.filter(pk=step.pk).update(**done)
        if counter:
            Execution.objects.filter(pk=step.execution_id).update(**{counter: F(counter) + 1})
        elif status == StepStatus.SKIPPED:
            Execution.objects.filter(pk=step.execution_id).update(steps_started=F("steps_started") - 1)


def _finish_step_one_statement(step: Step, done: dict, counter_sql: str) -> None:
    """The step's UPDATE and its run's counter as one statement (one commit for both)."""
    alias = Step.objects.db
    connection = connections[alias]
    update_sql, params = _update_sql(Step, Q(pk=step.pk), done)
    if not counter_sql:
        sql = update_sql
    else:
        step_table = connection.ops.quote_name(Step._meta.db_table)
        execution_table = connection.ops.quote_name(Execution._meta.db_table)
        sql = (
            f"WITH finished AS ({update_sql} RETURNING {step_table}.execution_id) "
            f"UPDATE {execution_table} SET {counter_sql} WHERE id IN (SELECT execution_id FROM finished)"
        )
    with transaction.mark_for_rollback_on_error(alias), connection.cursor() as cursor:
        cursor.execute(sql, params)


def touch_heartbeat(execution_id: uuid.UUID | str, claim_token: uuid.UUID, now: datetime | None = None) -> bool:
    """Refresh heartbeat_at for the supervisor's own claim; False once it lost the run."""
    return bool(
        Execution.objects.filter(pk=execution_id, claim_token=claim_token)
        .filter(may_run_steps(claim_token))
        .update(heartbeat_at=now or timezone.now())
    )
