"""Recovery from an incident (the admin's incident page).

- Re-run the runs that did no work: the incident's finished runs that are "safe to re-run"
  (failures.catalogue.DID_NO_WORK_CODES: no step ever started) and have no child run yet,
  each through executions.rerun, at most BULK_RERUN_LIMIT per confirmation, stopping at
  the first message that cannot be sent: the bulk re-run's rules (executions.services).
- Resume the others: runs that may have partly run are resumed from the step that did not
  succeed (executions.resume), reusing the outputs of the steps that did, through the bulk
  resume's loop (executions.services.resume_each): a run whose interrupted step may repeat
  and is not idempotent is left out and listed, to be resumed one by one from its page
  with the confirmation that names the step.
"""

from __future__ import annotations

import logging

from django.db.models import Exists, OuterRef, Q, QuerySet

from executions.models import Execution
from executions.services import BulkRerunResult, rerun_each, resume_each
from failures.catalogue import DID_NO_WORK_CODES
from failures.statuses import ERROR_STATUSES, TERMINAL, ErrorType
from incidents.models import Incident, IncidentNote, IncidentRun, NoteKind

logger = logging.getLogger("conveyor.incidents")

RESUME_NEEDS = (
    "Resume them from the step that did not succeed: the steps that succeeded are not run again; "
    "a run whose interrupted step may repeat and is not idempotent is listed, to be resumed from its own page."
)


def _runs(incident: Incident) -> QuerySet[Execution]:
    children = Execution.objects.filter(rerun_of=OuterRef("pk"))
    return (
        # The incident's links first (incident_run_incident_idx), then the runs by primary key.
        Execution.objects.filter(pk__in=IncidentRun.objects.filter(incident=incident).values("execution_id"))
        .filter(status__in=sorted(TERMINAL))
        .filter(~Q(Exists(children)))
        .order_by("created_at", "id")
    )


def safe_to_rerun(incident: Incident) -> QuerySet[Execution]:
    """The incident's runs that provably did no work and were not re-run yet."""
    return _runs(incident).filter(error_type=ErrorType.SYSTEM, error_code__in=sorted(DID_NO_WORK_CODES))


def may_have_partly_run(incident: Incident) -> QuerySet[Execution]:
    """The others: they may have partly run, so a re-run from the start could repeat work."""
    return _runs(incident).exclude(error_type=ErrorType.SYSTEM, error_code__in=sorted(DID_NO_WORK_CODES))


def rerun_safe_runs(incident: Incident, *, actor: str, limit: int | None = None) -> BulkRerunResult:
    result = rerun_each(safe_to_rerun(incident), actor=actor, limit=limit)
    _recorded(incident, actor, "rerun", f"re-ran {len(result.rerun)} run(s) that did no work", result)
    return result


def resumable_others(incident: Incident) -> QuerySet[Execution]:
    """The runs that may have partly run and can be resumed (failed, no child run yet)."""
    return may_have_partly_run(incident).filter(status__in=sorted(ERROR_STATUSES))


def resume_others(incident: Incident, *, actor: str, limit: int | None = None) -> BulkRerunResult:
    """Resume up to `limit` of the incident's runs that may have partly run, oldest first."""
    result = resume_each(resumable_others(incident), actor=actor, limit=limit)
    _recorded(incident, actor, "resume", f"resumed {len(result.rerun)} run(s) that may have partly run", result)
    return result


def _recorded(incident: Incident, actor: str, kind: str, done: str, result: BulkRerunResult) -> None:
    """A recovery on the incident's timeline and in the log."""
    stopped = "; stopped: the queue refused a message" if result.stopped_early else ""
    IncidentNote.objects.create(
        incident=incident,
        kind=NoteKind.RECOVERY,
        author=actor,
        text=f"{done}; {len(result.refused)} refused or needing a confirmation; {result.remaining} left{stopped}",
    )
    logger.info(
        f"incident recovery: {kind}",
        extra={
            "event": f"incident_{kind}",
            "incident_id": incident.pk,
            "actor": actor,
            "recovered": len(result.rerun),
            "refused": len(result.refused),
            "remaining": result.remaining,
            "stopped_early": result.stopped_early,
        },
    )
