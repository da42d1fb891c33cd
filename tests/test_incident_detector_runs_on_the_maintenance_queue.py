"""Beat runs the incident detector on the maintenance queue (like the reaper), every
CONVEYOR_INCIDENT_DETECT_S, with a message that expires when the next is due (an outage's
backlog is discarded, not drained: the next pass reads everything since its watermark)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings

from config.celery import app
from incidents import tasks
from incidents.models import DetectorState, Incident
from tests.clock import utc
from tests.factories import make_workflow
from tests.incident_runs import errors_every


def test_the_beat_entry_and_the_route_go_to_the_maintenance_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["incident-detection"]
    assert entry["task"] == "incidents.tasks.detect"
    assert entry["schedule"] == settings.INCIDENT_DETECT_S
    assert entry["options"] == {"queue": settings.MAINTENANCE_QUEUE, "expires": float(settings.INCIDENT_DETECT_S)}
    route = app.amqp.router.route({}, "incidents.tasks.detect")
    assert route["queue"].name.endswith(settings.MAINTENANCE_QUEUE)


@pytest.mark.django_db
def test_the_task_runs_a_pass_and_moves_the_watermark(settings):
    settings.INCIDENT_THRESHOLD = 5
    t0 = utc(2026, 3, 2, 10, 0)
    errors_every(make_workflow(), t0, 5, 10)

    with time_machine.travel(t0 + timedelta(minutes=1), tick=False):
        result = tasks.detect.run()  # the body (the worker wraps it in fresh connections)

    assert result["acquired"] and len(result["opened"]) == 1
    assert Incident.objects.count() == 1
    assert DetectorState.objects.get().watermark == t0 + timedelta(minutes=1)
