"""Opening and resolving an incident is logged, counted and notified: an email through
Django's backend to CONVEYOR_INCIDENT_EMAILS and a POST to CONVEYOR_INCIDENT_WEBHOOK_URL
signed with the v2 scheme of docs/webhooks.md (verified here as a receiver would, from the
document, not with the platform's own code). A refused destination (the HTTP action's
address policy) or a failing receiver is logged and counted and never stops detection."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from datetime import timedelta

import pytest
from django.core import mail

from incidents import services
from incidents.metrics import INCIDENT_NOTIFICATIONS, INCIDENTS_OPENED, INCIDENTS_RESOLVED
from incidents.models import Incident
from tests.clock import utc
from tests.factories import make_workflow
from tests.helpers_http import LoopbackDNS, LoopbackHTTPServer, Reply
from tests.incident_runs import detect_at, errors_every

pytestmark = pytest.mark.django_db

T0 = utc(2026, 3, 2, 10, 0)
SECRET = "incident-webhook-secret-for-tests"


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    resolver = LoopbackDNS()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    yield resolver
    assert resolver.violations == []


@pytest.fixture
def receiver(settings):
    settings.INCIDENT_THRESHOLD = 5
    settings.INCIDENT_WINDOW_S = 300
    settings.INCIDENT_QUIET_S = 600
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.INCIDENT_EMAILS = ["oncall@example.com", "sre@example.com"]
    settings.INCIDENT_WEBHOOK_SECRET = SECRET
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with LoopbackHTTPServer() as server:
        server.route("/incidents", Reply(204))
        settings.INCIDENT_WEBHOOK_URL = server.url("/incidents")
        yield server


def counter(metric, **labels) -> float:
    return metric.labels(**labels)._value.get() if labels else metric._value.get()


def verify_v2(headers: dict[str, str], body: bytes) -> None:
    timestamp, event_id = headers["x-conveyor-timestamp"], headers["x-conveyor-event-id"]
    expected = hmac.new(SECRET.encode(), f"v2.{timestamp}.{event_id}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["x-conveyor-signature"] == f"v2={expected}"


def outage() -> None:
    errors_every(make_workflow(), T0, 5, 10)


def test_open_and_resolve_are_emailed_posted_signed_logged_and_counted(
    receiver, caplog, django_capture_on_commit_callbacks
):
    opened_before = counter(INCIDENTS_OPENED, category="infrastructure")
    resolved_before = counter(INCIDENTS_RESOLVED)
    sent_before = counter(INCIDENT_NOTIFICATIONS, channel="webhook", outcome="sent")
    outage()
    caplog.set_level(logging.INFO, logger="conveyor.incidents")

    with django_capture_on_commit_callbacks(execute=True):
        detect_at(T0 + timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        detect_at(T0 + timedelta(minutes=20))

    incident = Incident.objects.get()
    assert [m.subject.split(":")[0] for m in mail.outbox] == [
        f"[Conveyor] incident #{incident.pk} opened",
        f"[Conveyor] incident #{incident.pk} resolved",
    ]
    assert mail.outbox[0].to == ["oncall@example.com", "sre@example.com"]
    assert "Runs affected: 5" in mail.outbox[0].body

    assert len(receiver.requests) == 2
    for seen, event in zip(receiver.requests, ("opened", "resolved"), strict=True):
        verify_v2(seen.headers, seen.body)
        assert seen.headers["x-conveyor-event-id"] == f"incident-{incident.pk}-{event}"
        data = json.loads(seen.body)
        assert data["event"] == f"incident.{event}" and data["incident"]["id"] == incident.pk
        assert data["incident"]["start"].startswith("2026-03-02T10:00:00") and data["incident"]["runs"] == 5
    assert json.loads(receiver.requests[1].body)["incident"]["end"].startswith("2026-03-02T10:00:40")

    assert counter(INCIDENTS_OPENED, category="infrastructure") == opened_before + 1
    assert counter(INCIDENTS_RESOLVED) == resolved_before + 1
    assert counter(INCIDENT_NOTIFICATIONS, channel="webhook", outcome="sent") == sent_before + 2
    events = [r.event for r in caplog.records if getattr(r, "event", "").startswith("incident_")]
    assert "incident_opened" in events and "incident_resolved" in events
    opened = next(r for r in caplog.records if getattr(r, "event", "") == "incident_opened")
    assert (opened.incident_id, opened.runs, opened.codes) == (incident.pk, 5, ["P-0005"])


def test_a_loopback_webhook_outside_the_allowed_networks_is_refused_and_detection_goes_on(
    receiver, settings, caplog, django_capture_on_commit_callbacks
):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = []  # the address policy refuses loopback
    refused_before = counter(INCIDENT_NOTIFICATIONS, channel="webhook", outcome="refused")
    outage()

    with django_capture_on_commit_callbacks(execute=True):
        report = detect_at(T0 + timedelta(minutes=1))

    assert len(report.opened) == 1 and Incident.objects.get().is_open
    assert receiver.requests == []  # nothing was sent to the refused address
    assert counter(INCIDENT_NOTIFICATIONS, channel="webhook", outcome="refused") == refused_before + 1
    assert "incident webhook refused" in caplog.text
    assert len(mail.outbox) == 1  # the email still went


def test_a_failing_receiver_and_a_failing_mail_server_are_counted_not_raised(
    receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    receiver.route("/incidents", Reply(500))
    failed_before = counter(INCIDENT_NOTIFICATIONS, channel="webhook", outcome="failed")
    mail_failed_before = counter(INCIDENT_NOTIFICATIONS, channel="email", outcome="failed")

    def broken_send_mail(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr("incidents.notify.send_mail", broken_send_mail)
    incident = services.open_incident(
        title="by hand", start=T0, opened_by="operator", author="operator:ann", categories=["database"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.resolve(incident, author="operator:ann")

    assert Incident.objects.get().status == "resolved"
    assert counter(INCIDENT_NOTIFICATIONS, channel="webhook", outcome="failed") == failed_before + 1
    assert counter(INCIDENT_NOTIFICATIONS, channel="email", outcome="failed") == mail_failed_before + 1
