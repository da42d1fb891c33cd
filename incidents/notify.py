"""Telling staff about an incident's opening and resolution: an email through Django's
email backend (to INCIDENT_EMAILS) and a JSON POST to one outgoing webhook
(INCIDENT_WEBHOOK_URL), signed with the v2 scheme of docs/webhooks.md (the same
`signed_headers` senders use towards our event webhooks, so a receiver verifies it the
documented way) with the event id `incident-<id>-<event>`.

The webhook goes through the HTTP action's address policy (workflows.actions.http: a
private, loopback or link-local destination is refused unless
CONVEYOR_HTTP_ALLOWED_NETWORKS lists it) and connects only to the addresses it checked.
A failed or refused delivery is logged and counted, never raised: a notification must
not stop detection.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import urllib3
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from failures.errors import ConveyorError
from incidents.metrics import INCIDENT_NOTIFICATIONS
from incidents.models import Incident
from scheduler.webhooks import signed_headers
from workflows.actions.http import Target, checked_addresses, connection_pool, parse_target

logger = logging.getLogger("conveyor.incidents")


def payload(incident: Incident, event: str) -> dict[str, Any]:
    return {
        "event": f"incident.{event}",
        "incident": {
            "id": incident.pk,
            "title": incident.title,
            "status": incident.status,
            "opened_by": incident.opened_by,
            "start": incident.start.isoformat(),
            "end": incident.end.isoformat() if incident.end else None,
            "categories": incident.categories,
            "codes": incident.codes,
            "runs": incident.runs_count,
            "workflows": incident.workflows_count,
            "organizations": incident.organizations_count,
        },
        "sent_at": timezone.now().isoformat(),
    }


def incident_event(incident: Incident, event: str) -> None:
    """Send both notifications of `event` ("opened", "resolved"); never raises."""
    data = payload(incident, event)
    if settings.INCIDENT_EMAILS:
        _email(incident, event, data)
    if settings.INCIDENT_WEBHOOK_URL:
        _webhook(incident, event, data)


def _email(incident: Incident, event: str, data: dict) -> None:
    subject = f"[Conveyor] incident #{incident.pk} {event}: {incident.title}"[:200]
    body = "\n".join(
        [
            f"Incident #{incident.pk} {event}: {incident.title}",
            f"Started: {data['incident']['start']}",
            f"Ended: {data['incident']['end'] or 'ongoing'}",
            f"Categories: {', '.join(incident.categories) or '-'}",
            f"Codes: {', '.join(incident.codes) or '-'}",
            f"Runs affected: {incident.runs_count} ({incident.workflows_count} workflows, "
            f"{incident.organizations_count} organizations)",
        ]
    )
    try:
        send_mail(subject, body + "\n", settings.DEFAULT_FROM_EMAIL, list(settings.INCIDENT_EMAILS))
    except Exception as exc:
        INCIDENT_NOTIFICATIONS.labels(channel="email", outcome="failed").inc()
        logger.error(
            "incident email failed: %s",
            type(exc).__name__,
            extra={"event": "incident_notification_failed", "channel": "email", "incident_id": incident.pk},
        )
        return
    INCIDENT_NOTIFICATIONS.labels(channel="email", outcome="sent").inc()


def _webhook(incident: Incident, event: str, data: dict) -> None:
    body = json.dumps(data, sort_keys=True).encode()
    event_id = f"incident-{incident.pk}-{event}"
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Conveyor-Incidents/1",
        **signed_headers(settings.INCIDENT_WEBHOOK_SECRET, body, event_id),
    }
    extra = {"event": "incident_notification_failed", "channel": "webhook", "incident_id": incident.pk}
    try:
        target = parse_target(settings.INCIDENT_WEBHOOK_URL)
        addresses = checked_addresses(target)
    except ConveyorError as exc:
        INCIDENT_NOTIFICATIONS.labels(channel="webhook", outcome="refused").inc()
        logger.error("incident webhook refused: %s", exc, extra=extra)
        return
    try:
        status = _post(target, addresses, headers, body)
    except Exception as exc:
        INCIDENT_NOTIFICATIONS.labels(channel="webhook", outcome="failed").inc()
        logger.error("incident webhook to %s failed: %s", target.display, type(exc).__name__, extra=extra)
        return
    if not 200 <= status < 300:
        INCIDENT_NOTIFICATIONS.labels(channel="webhook", outcome="failed").inc()
        logger.error("incident webhook to %s answered %s", target.display, status, extra={**extra, "status": status})
        return
    INCIDENT_NOTIFICATIONS.labels(channel="webhook", outcome="sent").inc()


def _post(target: Target, addresses: list[str], headers: dict[str, str], body: bytes) -> int:
    """POST to the first checked address that connects (never to an unchecked one)."""
    timeout = float(settings.INCIDENT_WEBHOOK_TIMEOUT_S)
    last: Exception | None = None
    for address in addresses:
        pool = connection_pool(target, address, timeout)
        try:
            response = pool.urlopen(
                "POST",
                target.request_target,
                body=body,
                headers={**headers, "Host": target.netloc},
                redirect=False,
                retries=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:
            last = exc
            continue
        finally:
            pool.close()
        return response.status
    raise last or OSError("no address to connect to")
