"""What other apps read about incidents: the open ones (the staff health page), the
notice a customer reads on a run, and the incidents that touched an organization (the
failure digest). Each read goes through an index of incidents_incident or
incidents_incidentrun."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Count, Q
from django.utils import timezone

from incidents.models import Incident, IncidentRun, IncidentStatus


def open_incidents(limit: int = 20) -> list[Incident]:
    """Open incidents, newest first (incident_status_start_idx)."""
    return list(Incident.objects.filter(status=IncidentStatus.OPEN).order_by("-start", "-pk")[:limit])


def _when(value: datetime) -> str:
    return timezone.localtime(value, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class CustomerIncident:
    """What a customer may know of an incident: when it started and ended, nothing else
    (no title, notes, codes or other organizations' runs)."""

    started_at: datetime
    resolved_at: datetime | None

    @property
    def ongoing(self) -> bool:
        return self.resolved_at is None

    @property
    def notice(self) -> str:
        text = f"This run was part of a platform incident that started at {_when(self.started_at)}"
        if self.resolved_at is None:
            return f"{text} and is ongoing: the Conveyor team is working on it."
        return f"{text} and was resolved at {_when(self.resolved_at)}."

    def as_data(self) -> dict:
        return {
            "started_at": self.started_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "ongoing": self.ongoing,
            "notice": self.notice,
        }


def _customer_view(incident: Incident) -> CustomerIncident:
    return CustomerIncident(started_at=incident.start, resolved_at=incident.end if not incident.is_open else None)


def customer_notice(execution) -> CustomerIncident | None:
    """The incident a run belongs to (following merges), as its customer may see it."""
    link = IncidentRun.objects.filter(execution_id=execution.pk).select_related("incident").first()
    if link is None:
        return None
    incident = link.incident
    seen = {incident.pk}
    while incident.merged_into_id is not None and incident.merged_into_id not in seen:
        incident = Incident.objects.get(pk=incident.merged_into_id)
        seen.add(incident.pk)
    return _customer_view(incident)


@dataclass(frozen=True)
class OrganizationIncident:
    started_at: datetime
    resolved_at: datetime | None
    runs: int  # this organization's runs in it

    @property
    def ongoing(self) -> bool:
        return self.resolved_at is None


def touching_organization(organization_id: int, start: datetime, end: datetime) -> list[OrganizationIncident]:
    """Incidents with runs of this organization that overlapped [start, end), oldest first
    (incident_run_org_idx), with how many of the organization's runs each affected."""
    rows = (
        IncidentRun.objects.filter(organization_id=organization_id, incident__start__lt=end)
        .filter(Q(incident__end__isnull=True) | Q(incident__end__gte=start))
        .filter(incident__merged_into__isnull=True)
        .values("incident_id", "incident__start", "incident__end", "incident__status")
        .annotate(n=Count("pk"))
        .order_by("incident__start", "incident_id")
    )
    return [
        OrganizationIncident(
            started_at=row["incident__start"],
            resolved_at=row["incident__end"] if row["incident__status"] != IncidentStatus.OPEN else None,
            runs=row["n"],
        )
        for row in rows
    ]
