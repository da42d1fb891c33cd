"""The incident detector: a periodic pass on the maintenance queue (beat, every
INCIDENT_DETECT_S), one at a time through a lease row (reaper.lease).

Each pass reads the system errors recorded since its watermark (minus one window: the
window's earlier errors count towards the threshold, and a row committed late is still
seen) that belong to no incident yet, through the (finished_at, status, error_type) index,
and:

1. open incidents gather the later errors they cover (services.gathers);
2. the rest is grouped by category (or by code: INCIDENT_GROUP_BY); a group with
   INCIDENT_THRESHOLD errors within INCIDENT_WINDOW_S opens an incident whose start is
   backdated to the first of those errors: an SQS outage stops the maintenance queue, so
   the detector often sees an outage only after the restore;
3. an incident the detector opened resolves once no error reached it for
   INCIDENT_QUIET_S; its end is its last error.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from executions.models import Execution
from failures.catalogue import CATALOGUE
from failures.statuses import ExecutionStatus
from incidents import metrics, services
from incidents.models import DetectorState, Incident, IncidentStatus, OpenedBy
from incidents.services import ErrorRow
from reaper import lease

logger = logging.getLogger("conveyor.incidents")
LEASE_NAME = "incidents"
STATE_NAME = "detector"
MAX_ROWS_PER_PASS = 5000  # a pass that hits it stops its watermark at the last row it read
# The very first pass (no watermark yet) looks back this far.
FIRST_PASS_LOOKBACK = timedelta(hours=1)


@dataclass
class DetectionReport:
    acquired: bool = True
    read: int = 0
    gathered: int = 0
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def run_detection(now: datetime | None = None) -> DetectionReport:
    """Take the lease and detect; a second concurrent caller does nothing."""
    holder = _holder()
    if not lease.acquire(LEASE_NAME, holder, float(settings.INCIDENT_LEASE_S)):
        metrics.DETECTOR_PASSES.labels(outcome="lease_held").inc()
        return DetectionReport(acquired=False)
    try:
        report = detect(now)
    except Exception:
        metrics.DETECTOR_PASSES.labels(outcome="failed").inc()
        raise
    else:
        metrics.DETECTOR_PASSES.labels(outcome="done").inc()
        return report
    finally:
        lease.release(LEASE_NAME, holder)


def _window() -> timedelta:
    return timedelta(seconds=float(settings.INCIDENT_WINDOW_S))


def unlinked_system_errors(since: datetime, until: datetime, limit: int = MAX_ROWS_PER_PASS) -> list[ErrorRow]:
    rows = (
        Execution.objects.filter(finished_at__gte=since, finished_at__lte=until, status=ExecutionStatus.SYSTEM_ERROR)
        .filter(incident_link__isnull=True)
        .order_by("finished_at", "id")
        .values_list("id", "finished_at", "error_code", "error_category", "workflow_id", "organization_id")[:limit]
    )
    # finished_at is never null in this range: the filter on it says so.
    return [
        ErrorRow(pk, at, code, category or (CATALOGUE[code].category if code in CATALOGUE else ""), wf, org)
        for pk, at, code, category, wf, org in rows
        if at is not None
    ]


def first_burst(rows: list[ErrorRow], threshold: int, window: timedelta) -> int | None:
    """Index of the first error of the first run of `threshold` errors within `window`
    (rows sorted by time), or None."""
    for i in range(len(rows) - threshold + 1):
        if rows[i + threshold - 1].at - rows[i].at <= window:
            return i
    return None


def detect(now: datetime | None = None) -> DetectionReport:
    now = now or timezone.now()
    window = _window()
    report = DetectionReport()
    state, _ = DetectorState.objects.get_or_create(name=STATE_NAME, defaults={"watermark": now - FIRST_PASS_LOOKBACK})
    rows = unlinked_system_errors(min(state.watermark, now) - window, now)
    report.read = len(rows)

    # 1. Open incidents take the later errors they cover.
    open_incidents = list(Incident.objects.filter(status=IncidentStatus.OPEN).order_by("start", "pk"))
    quiet = timedelta(seconds=float(settings.INCIDENT_QUIET_S))
    by_incident: dict[int, list[ErrorRow]] = defaultdict(list)
    last_seen = {i.pk: i.last_error_at or i.start for i in open_incidents}
    rest: list[ErrorRow] = []
    for row in rows:
        # An error after a quiet period is a new outage, not this one (a detector stopped
        # for a while sees both at once).
        target = next(
            (
                i
                for i in open_incidents
                if row.at >= i.start
                and row.at - last_seen[i.pk] < quiet
                and services.gathers(i, row.code, row.category)
            ),
            None,
        )
        if target is None:
            rest.append(row)
        else:
            by_incident[target.pk].append(row)
            last_seen[target.pk] = max(last_seen[target.pk], row.at)
    for incident in open_incidents:
        if by_incident.get(incident.pk):
            report.gathered += services.gather(incident, by_incident[incident.pk])

    # 2. A group over the threshold within the window opens an incident.
    group_by = settings.INCIDENT_GROUP_BY
    groups: dict[str, list[ErrorRow]] = defaultdict(list)
    for row in rest:
        groups[row.code if group_by == "code" else row.category].append(row)
    threshold = int(settings.INCIDENT_THRESHOLD)
    for key, group in sorted(groups.items()):
        # One pass may see several outages of a group (the detector was stopped): a gap of
        # a quiet period ends an incident, the next burst opens another.
        while (first := first_burst(group, threshold, window)) is not None:
            end = first + 1
            while end < len(group) and group[end].at - group[end - 1].at < quiet:
                end += 1
            burst, group = group[first:end], group[end:]
            report.opened.append(_open_for(burst, group_by, key, threshold, window, now).pk)

    # 3. The detector's incidents resolve after a quiet period.
    for incident in Incident.objects.filter(status=IncidentStatus.OPEN, opened_by=OpenedBy.AUTO):
        last = incident.last_error_at or incident.start
        if now - last >= quiet:
            services.resolve(
                incident,
                author=services.DETECTOR,
                end=last,
                note=f"resolved by the detector: no system error for {quiet.total_seconds():g} s",
            )
            report.resolved.append(incident.pk)

    capped = len(rows) >= MAX_ROWS_PER_PASS
    state.watermark = rows[-1].at if capped else now
    state.last_pass_at = now
    state.save(update_fields=["watermark", "last_pass_at"])
    if report.opened or report.resolved:
        logger.info(
            "incident detection pass",
            extra={
                "event": "incident_detection",
                "read": report.read,
                "gathered": report.gathered,
                "opened": report.opened,
                "resolved": report.resolved,
            },
        )
    return report


def _open_for(
    burst: list[ErrorRow], group_by: str, key: str, threshold: int, window: timedelta, now: datetime
) -> Incident:
    label = key if group_by == "code" else key.replace("_", " ")
    return services.open_incident(
        title=f"{label}: system errors from {timezone.localtime(burst[0].at):%Y-%m-%d %H:%M}",
        start=burst[0].at,
        opened_by=OpenedBy.AUTO,
        author=services.DETECTOR,
        key_kind=group_by,
        key=key,
        categories=[] if group_by == "code" else [key],
        codes=[key] if group_by == "code" else [],
        note=(
            f"opened by the detector: {threshold} system errors of {group_by} {key} within "
            f"{window.total_seconds():g} s (first at {burst[0].at:%Y-%m-%d %H:%M:%S}, seen at {now:%Y-%m-%d %H:%M:%S})"
        ),
        runs=burst,
    )
