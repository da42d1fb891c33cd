"""The cron dispatcher: one tick finds the due fire time of every schedule workflow and
enqueues it once (DESIGN.md §5, docs/decisions/0004-triggers.md).

- A fire time is enqueued with dispatch key `schedule:<workflow id>:<fire time UTC>`:
  two beat processes or overlapping ticks may both try, the unique key makes one run.
- Only the latest fire time <= now runs: after downtime (an SQS outage stops the ticks)
  that is the one catch-up run, if it lies within CONVEYOR_SCHEDULE_CATCHUP_WINDOW_S.
  Every fire time it hides, and the latest one too when it is older than the window, was
  missed: each is recorded as a run of its own, `system_error` CS-0002 with no work done
  (executions.enqueue.record_missed), never replayed. At most
  CONVEYOR_MISSED_RUN_RECORDS_MAX of them (the latest) get a record each; the older rest
  is counted in one summary record. Their dispatch keys make sure no fire time both runs
  and is recorded missed, or runs twice.
- Fire times before the schedule was armed (created, edited or re-enabled: the
  workflow's save) never run, so a new or edited schedule does not fire for the past.
- Every tick reads the workflows afresh: editing or disabling a schedule takes effect on
  the next tick, with nothing to restart.

The tick holds no transaction around enqueue: a send that fails raises EnqueueFailed at
once and the run is already `system_error` CS-0001.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from executions.enqueue import EnqueueFailed, Missed, enqueue, record_missed
from failures.catalogue import Code
from failures.statuses import TriggerType
from scheduler import metrics
from scheduler.models import ScheduleState
from workflows.cron import CronSchedule, fire_time_key
from workflows.models import Workflow
from workflows.triggers import InvalidTrigger, schedule_from_config, validate_trigger

logger = logging.getLogger("conveyor.scheduler")


@dataclass
class TickReport:
    fired: list[str] = field(default_factory=list)  # dispatch keys of runs created
    duplicates: int = 0
    failed: list[str] = field(default_factory=list)  # dispatch keys whose send failed (CS-0001)
    missed: int = 0
    invalid: int = 0
    errors: int = 0


def scheduled_workflows():
    return Workflow.objects.alive().filter(enabled=True, trigger_type=TriggerType.SCHEDULE)


def dispatch_key(workflow_id: int, fire_at: datetime) -> str:
    return f"schedule:{workflow_id}:{fire_time_key(fire_at)}"


def tick(now: datetime | None = None) -> TickReport:
    """One dispatcher pass over every enabled schedule workflow."""
    now = now or timezone.now()
    report = TickReport()
    # A schedule that is disabled, deleted or no longer a schedule stops counting: when
    # it comes back it is armed afresh and never fires for the time it was off.
    ScheduleState.objects.filter(active=True).exclude(workflow__in=scheduled_workflows()).update(active=False)
    for workflow in _in_pages(scheduled_workflows().select_related("schedule_state")):
        try:
            _tick_one(workflow, now, report)
        except Exception:
            report.errors += 1
            metrics.SCHEDULE_FIRES.labels(outcome="error").inc()
            logger.exception("schedule tick failed for a workflow", extra={"workflow_id": workflow.pk})
    metrics.SCHEDULE_TICKS.labels(outcome="errors" if report.errors else "done").inc()
    return report


def _in_pages(queryset, size: int = 500):
    """Workflows by primary key, a page at a time: no cursor is held open while enqueue
    commits its own transactions."""
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last).order_by("pk")[:size])
        yield from page
        if len(page) < size:
            return
        last = page[-1].pk


def _state_for(workflow: Workflow, fingerprint: str) -> ScheduleState:
    try:
        state = workflow.schedule_state
    except ScheduleState.DoesNotExist:
        state, _ = ScheduleState.objects.get_or_create(
            workflow=workflow, defaults={"fingerprint": fingerprint, "armed_at": workflow.updated_at}
        )
    if state.fingerprint != fingerprint or not state.active:
        # Edited or re-enabled: count from the save that did it. The CAS on the old values
        # lets one of two racing ticks re-arm; the other re-reads the result.
        ScheduleState.objects.filter(pk=state.pk, fingerprint=state.fingerprint, active=state.active).update(
            fingerprint=fingerprint, active=True, armed_at=workflow.updated_at, last_fire_at=None, next_fire_at=None
        )
        state.refresh_from_db()
    return state


def _tick_one(workflow: Workflow, now: datetime, report: TickReport) -> None:
    try:
        config = validate_trigger(workflow.trigger_type, workflow.trigger_config)
    except InvalidTrigger as exc:
        report.invalid += 1
        metrics.SCHEDULE_FIRES.labels(outcome="invalid").inc()
        logger.warning("schedule has an invalid trigger config: %s", exc, extra={"workflow_id": workflow.pk})
        return
    schedule = schedule_from_config(config)
    fingerprint = f"{schedule.expression}|{schedule.timezone_name}"
    state = _state_for(workflow, fingerprint)
    if state.next_fire_at is not None and state.next_fire_at > now:
        return  # nothing due: the common case costs no cron arithmetic
    fire_at = schedule.latest_at_or_before(now)
    if fire_at is None or fire_at <= state.armed_at or (state.last_fire_at and fire_at <= state.last_fire_at):
        _remember(state, None, schedule, now)
        return

    window = timedelta(seconds=settings.SCHEDULE_CATCHUP_WINDOW_S)
    handled_until = max(state.last_fire_at or state.armed_at, state.armed_at)
    missed = list(missed_between(schedule, handled_until, fire_at))
    if now - fire_at > window:
        missed.append(fire_at)
    else:
        _fire(workflow, schedule, fire_at, dispatch_key(workflow.pk, fire_at), report)
    if missed:
        _record_missed(workflow, schedule, missed, report)
    _remember(state, fire_at, schedule, now)


# Never walk more fire times than this for one tick (a minutely schedule off for months).
MISSED_SCAN_LIMIT = 100_000


def missed_between(schedule: CronSchedule, after: datetime, before: datetime) -> Iterator[datetime]:
    """Fire times strictly between `after` and `before`, oldest first."""
    cursor = after
    for _ in range(MISSED_SCAN_LIMIT):
        moment = schedule.next_after(cursor)
        if moment is None or moment >= before:
            return
        yield moment
        cursor = moment
    logger.warning("more than %d missed fire times: the older ones are not counted", MISSED_SCAN_LIMIT)


def _schedule_input(schedule: CronSchedule, fire_at: datetime) -> dict:
    return {
        "schedule": {
            "fire_time": fire_time_key(fire_at),
            "local_fire_time": fire_at.astimezone(schedule.zone).isoformat(),
            "cron": schedule.expression,
            "timezone": schedule.timezone_name,
        }
    }


def _record_missed(workflow: Workflow, schedule: CronSchedule, missed: list[datetime], report: TickReport) -> None:
    count = record_missed(
        workflow,
        trigger_type=TriggerType.SCHEDULE,
        code=Code.CS0002,
        missed=(
            Missed(dispatch_key(workflow.pk, moment), _schedule_input(schedule, moment), fire_time_key(moment))
            for moment in missed
        ),
        cause="the fire time passed while the platform could not dispatch it (no tick ran: queue outage or beat down)",
        what="fire times",
        summary_key=f"schedule:{workflow.pk}",
        summary_input={"schedule": {"cron": schedule.expression, "timezone": schedule.timezone_name}},
    )
    report.missed += count
    metrics.SCHEDULE_FIRES.labels(outcome="missed").inc(count)


def _fire(workflow: Workflow, schedule: CronSchedule, fire_at: datetime, key: str, report: TickReport) -> None:
    run_input = _schedule_input(schedule, fire_at)
    try:
        enqueued = enqueue(workflow, trigger_type=TriggerType.SCHEDULE, dispatch_key=key, input=run_input)
    except EnqueueFailed:
        # The run exists as system_error CS-0001 (enqueue counted and logged it); the fire
        # time is handled: the retry policy, not the dispatcher, may run it again.
        report.failed.append(key)
        metrics.SCHEDULE_FIRES.labels(outcome="enqueue_failed").inc()
        return
    if enqueued.created:
        report.fired.append(key)
        metrics.SCHEDULE_FIRES.labels(outcome="fired").inc()
        logger.info(
            "schedule fired", extra={"event": "schedule_fired", "workflow_id": workflow.pk, "dispatch_key": key}
        )
    else:
        report.duplicates += 1
        metrics.SCHEDULE_FIRES.labels(outcome="duplicate").inc()


def _remember(state: ScheduleState, fire_at: datetime | None, schedule: CronSchedule, now: datetime) -> None:
    """Move the state forward, never back (a slower racing tick must not rewind it)."""
    next_fire = schedule.next_after(now)
    updates: dict = {}
    if fire_at is not None:
        updates["last_fire_at"] = fire_at
    if next_fire != state.next_fire_at:
        updates["next_fire_at"] = next_fire
    if not updates:
        return
    rows = ScheduleState.objects.filter(pk=state.pk, fingerprint=state.fingerprint)
    if fire_at is not None:
        rows = rows.filter(Q(last_fire_at__isnull=True) | Q(last_fire_at__lt=fire_at))
    rows.update(**updates)
