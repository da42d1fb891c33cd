"""conveyor_in_flight_runs{status} counts the runs not finished yet (every in-progress
status, zero included) and conveyor_oldest_pending_age_seconds says how long the oldest
pending run has waited: what the "runs stuck pending" alert reads."""

from datetime import timedelta

import pytest
from django.utils import timezone

from failures.statuses import IN_PROGRESS
from observability.scrape import matching, value
from tests.factories import make_execution, make_workflow

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queue_reads(settings):
    settings.METRICS_QUEUES = []


def test_nothing_in_flight_is_zero_for_every_in_progress_status(client):
    text = client.get("/metrics").content.decode()

    assert {s.labels["status"]: s.value for s in matching(text, "conveyor_in_flight_runs")} == dict.fromkeys(
        IN_PROGRESS, 0
    )
    assert value(text, "conveyor_oldest_pending_age_seconds") == 0


def test_pending_and_running_runs_are_counted_and_the_oldest_pending_age_reported(client, settings):
    workflow = make_workflow()
    now = timezone.now()
    make_execution(workflow, status="pending", queued_at=now - timedelta(minutes=20))
    make_execution(workflow, status="pending", queued_at=now - timedelta(minutes=1))
    make_execution(workflow, status="running", queued_at=now - timedelta(minutes=30))
    make_execution(workflow, status="success", finished_at=now)

    text = client.get("/metrics").content.decode()

    assert value(text, "conveyor_in_flight_runs", status="pending") == 2
    assert value(text, "conveyor_in_flight_runs", status="running") == 1
    assert 20 * 60 <= value(text, "conveyor_oldest_pending_age_seconds") < 21 * 60
    assert value(text, "conveyor_start_threshold_seconds") == settings.START_THRESHOLD_S
