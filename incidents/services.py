"""Everything that changes an incident: open, gather runs, annotate, merge, resolve
(docs/decisions/0012-incidents.md). The detector and the admin both call these; nothing
else writes an incident. Open and resolve are logged, counted and notified (after commit:
a notification never describes a change that rolled back, and never fails the change).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from failures.catalogue import CATALOGUE
from incidents import metrics
from incidents.models import Incident, IncidentNote, IncidentRun, IncidentStatus, NoteKind, OpenedBy

logger = logging.getLogger("conveyor.incidents")
DETECTOR = "detector"


class IncidentRefused(ValueError):
    """The change cannot be made (an incident already resolved, merged into itself...)."""


@dataclass(frozen=True)
class ErrorRow:
    """One system error as the detector reads it (a run's columns, no model instance)."""

    execution_id: uuid.UUID
    at: datetime  # finished_at: when the platform recorded the error
    code: str
    category: str
    workflow_id: int
    organization_id: int


def gathers(incident: Incident, code: str, category: str) -> bool:
    """Whether an open incident takes a later error of this code and category: the
    detector's own incidents take their key, an operator's its listed categories and codes."""
    if incident.key_kind == "code":
        return code == incident.key
    if incident.key_kind == "category":
        return category == incident.key
    return category in incident.categories or code in incident.codes


def open_incident(
    *,
    title: str,
    start: datetime,
    opened_by: str,
    author: str,
    categories: Sequence[str] = (),
    codes: Sequence[str] = (),
    key_kind: str = "",
    key: str = "",
    note: str = "",
    runs: Iterable[ErrorRow] = (),
) -> Incident:
    title = title.strip()
    if not title:
        raise IncidentRefused("an incident needs a title")
    with transaction.atomic():
        incident = Incident.objects.create(
            title=title[:200],
            start=start,
            opened_by=opened_by,
            key_kind=key_kind,
            key=key,
            categories=sorted(set(categories)),
            codes=sorted(set(codes)),
            opened_at=timezone.now(),
        )
        IncidentNote.objects.create(
            incident=incident, kind=NoteKind.OPENED, author=author, text=note or f"opened: {incident.title}"
        )
        _attach(incident, list(runs))
        incident.refresh_from_db()
        category = incident.key if key_kind == "category" else (incident.categories or [metrics.NO_CATEGORY])[0]
        transaction.on_commit(lambda: _opened(incident.pk, category, author))
    return incident


def gather(incident: Incident, runs: Sequence[ErrorRow]) -> int:
    """Link later errors to an open incident; returns how many were linked."""
    if not runs:
        return 0
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        if not locked.is_open:
            return 0
        linked = _attach(locked, list(runs))
        if linked:
            IncidentNote.objects.create(
                incident=locked, kind=NoteKind.GATHERED, author=DETECTOR, text=f"{linked} more run(s) affected"
            )
    return linked


def _attach(incident: Incident, runs: list[ErrorRow]) -> int:
    """Link runs in one statement; a run already in an incident (a concurrent pass, an
    operator's incident) keeps its link (the one-to-one on the run refuses a second)."""
    before = IncidentRun.objects.filter(incident=incident).count()
    IncidentRun.objects.bulk_create(
        [
            IncidentRun(
                incident=incident,
                execution_id=row.execution_id,
                workflow_id=row.workflow_id,
                organization_id=row.organization_id,
                error_code=row.code,
                error_at=row.at,
            )
            for row in runs
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    _refresh_counts(incident)
    return incident.runs_count - before


def _refresh_counts(incident: Incident) -> None:
    links = IncidentRun.objects.filter(incident=incident)
    agg = links.aggregate(
        runs=Count("pk"),
        workflows=Count("workflow_id", distinct=True),
        organizations=Count("organization_id", distinct=True),
        first=Min("error_at"),
        last=Max("error_at"),
    )
    codes = set(incident.codes) | set(links.order_by().values_list("error_code", flat=True).distinct())
    codes.discard("")
    categories = set(incident.categories) | {CATALOGUE[c].category for c in codes if c in CATALOGUE}
    incident.runs_count = agg["runs"]
    incident.workflows_count = agg["workflows"]
    incident.organizations_count = agg["organizations"]
    incident.codes = sorted(codes)
    incident.categories = sorted(str(c) for c in categories)
    if agg["last"] is not None:
        incident.last_error_at = max(agg["last"], incident.last_error_at or agg["last"])
    if agg["first"] is not None and agg["first"] < incident.start:
        incident.start = agg["first"]  # backdated to its first error
    incident.save(
        update_fields=[
            "runs_count",
            "workflows_count",
            "organizations_count",
            "codes",
            "categories",
            "last_error_at",
            "start",
        ]
    )


def annotate(incident: Incident, text: str, *, author: str) -> IncidentNote:
    text = text.strip()
    if not text:
        raise IncidentRefused("a note needs some text")
    return IncidentNote.objects.create(incident=incident, kind=NoteKind.NOTE, author=author, text=text)


def resolve(incident: Incident, *, author: str, end: datetime | None = None, note: str = "") -> Incident:
    """Resolve an open incident; `end` defaults to its last error (or now, if it had none)."""
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        if not locked.is_open:
            raise IncidentRefused(f"incident #{locked.pk} is already resolved")
        now = timezone.now()
        locked.status = IncidentStatus.RESOLVED
        locked.resolved_at = now
        locked.end = end or locked.last_error_at or now
        locked.save(update_fields=["status", "resolved_at", "end"])
        IncidentNote.objects.create(incident=locked, kind=NoteKind.RESOLVED, author=author, text=note or "resolved")
        transaction.on_commit(lambda: _resolved(locked.pk, author))
    return locked


def merge(source: Incident, target: Incident, *, author: str) -> Incident:
    """Fold `source` into `target`: its runs, scope and start move over; `source` is
    resolved and points at `target`. Returns the target."""
    if source.pk == target.pk:
        raise IncidentRefused("an incident cannot be merged into itself")
    with transaction.atomic():
        first, second = sorted([source.pk, target.pk])
        locked = {i.pk: i for i in Incident.objects.select_for_update().filter(pk__in=[first, second]).order_by("pk")}
        src, dst = locked[source.pk], locked[target.pk]
        if src.merged_into_id is not None:
            raise IncidentRefused(f"incident #{src.pk} was already merged into #{src.merged_into_id}")
        if dst.merged_into_id is not None:
            raise IncidentRefused(f"incident #{dst.pk} was merged into #{dst.merged_into_id}: merge into that one")
        moved = IncidentRun.objects.filter(incident=src).count()
        # Re-pointing the links is the merge itself; each link row is saved one by one
        # (the models' own save), never a bulk update of the runs.
        for link in IncidentRun.objects.filter(incident=src):
            link.incident = dst
            link.save(update_fields=["incident"])
        dst.categories = sorted(set(dst.categories) | set(src.categories))
        dst.codes = sorted(set(dst.codes) | set(src.codes))
        if src.key_kind and src.key and src.key_kind == dst.key_kind == "category" and src.key != dst.key:
            dst.key_kind, dst.key = "", ""  # now gathers both categories: its lists decide
            dst.categories = sorted(set(dst.categories) | {src.key})
        dst.start = min(dst.start, src.start)
        if src.last_error_at and (dst.last_error_at is None or src.last_error_at > dst.last_error_at):
            dst.last_error_at = src.last_error_at
        if not dst.is_open and src.is_open:
            dst.status, dst.end, dst.resolved_at = IncidentStatus.OPEN, None, None
        dst.save()
        _refresh_counts(dst)
        was_open = src.is_open
        src.merged_into = dst
        src.status = IncidentStatus.RESOLVED
        src.resolved_at = src.resolved_at or timezone.now()
        src.end = src.end or src.last_error_at or src.resolved_at
        src.save(update_fields=["merged_into", "status", "resolved_at", "end"])
        _refresh_counts(src)
        IncidentNote.objects.create(
            incident=src, kind=NoteKind.MERGED, author=author, text=f"merged into #{dst.pk} ({moved} run(s) moved)"
        )
        IncidentNote.objects.create(
            incident=dst, kind=NoteKind.MERGED, author=author, text=f"#{src.pk} merged in ({moved} run(s) moved)"
        )
        if was_open:
            transaction.on_commit(lambda: _resolved(src.pk, author, merged=True))
    return dst


# --- log, count, notify ---------------------------------------------------------------------
def _opened(incident_id: int, category: str, author: str) -> None:
    from incidents import notify

    incident = Incident.objects.get(pk=incident_id)
    metrics.INCIDENTS_OPENED.labels(category=category).inc()
    logger.warning(
        "incident opened: #%s %s",
        incident.pk,
        incident.title,
        extra={
            "event": "incident_opened",
            "incident_id": incident.pk,
            "opened_by": incident.opened_by,
            "actor": author,
            "start": incident.start.isoformat(),
            "categories": incident.categories,
            "codes": incident.codes,
            "runs": incident.runs_count,
            "workflows": incident.workflows_count,
            "organizations": incident.organizations_count,
        },
    )
    notify.incident_event(incident, "opened")


def _resolved(incident_id: int, author: str, *, merged: bool = False) -> None:
    from incidents import notify

    incident = Incident.objects.get(pk=incident_id)
    metrics.INCIDENTS_RESOLVED.inc()
    logger.warning(
        "incident resolved: #%s %s",
        incident.pk,
        incident.title,
        extra={
            "event": "incident_resolved",
            "incident_id": incident.pk,
            "actor": author,
            "merged_into": incident.merged_into_id,
            "start": incident.start.isoformat(),
            "end": incident.end.isoformat() if incident.end else None,
            "runs": incident.runs_count,
        },
    )
    if not merged:
        notify.incident_event(incident, "resolved")


__all__ = [
    "DETECTOR",
    "ErrorRow",
    "IncidentRefused",
    "OpenedBy",
    "annotate",
    "gather",
    "gathers",
    "merge",
    "open_incident",
    "resolve",
]
