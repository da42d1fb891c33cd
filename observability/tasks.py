"""Beat tasks of the observability app; all run on the maintenance queue (the reaper's
worker), never on the runs queue."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from observability.digest import deliver, period_bounds
from observability.health import roll_up
from observability.retention import purge_expired
from pipeline.tasks import ConveyorTask
from tenancy.models import Organization


@shared_task(base=ConveyorTask, name="observability.tasks.send_failure_digests")
def send_failure_digests(period: str) -> int:
    """Fan out: one task per organization, all for the same period."""

    _, end = period_bounds(period)
    org_ids = list(Organization.objects.order_by("pk").values_list("pk", flat=True))
    for org_id in org_ids:
        send_organization_digest.apply_async((org_id, period, end.isoformat()), queue=settings.MAINTENANCE_QUEUE)
    return len(org_ids)


@shared_task(base=ConveyorTask, name="observability.tasks.send_organization_digest")
def send_organization_digest(organization_id: int, period: str, until: str | None = None) -> str:
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return "missing"
    record = deliver(organization, period, parse_datetime(until) if until else timezone.now())
    if record is None:
        return "empty"
    return "sent" if record.sent_at else "stored"


@shared_task(base=ConveyorTask, name="observability.tasks.purge_expired_runs")
def purge_expired_runs() -> dict:
    report = purge_expired()
    return {
        "executions": report.executions,
        "steps": report.steps,
        "transitions": report.transitions,
        "batches": report.batches,
        "more": report.more,
    }


@shared_task(base=ConveyorTask, name="observability.tasks.roll_up_run_hours")
def roll_up_run_hours() -> dict:
    """The health page's hourly counts per status (observability.health.roll_up)."""
    report = roll_up(timezone.now())
    return {"hours": report.hours, "until": report.until.isoformat(), "pruned": report.pruned}
