"""conveyor_reaper_last_sweep_timestamp_seconds comes from the reaper's lease row (the
time its last sweep finished): what the "reaper stopped" alert reads."""

import pytest

from observability.scrape import value
from reaper.models import Lease
from reaper.sweep import run_sweep

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queue_reads(settings):
    settings.METRICS_QUEUES = []


def test_a_reaper_that_never_swept_reports_zero(client):
    assert value(client.get("/metrics").content.decode(), "conveyor_reaper_last_sweep_timestamp_seconds") == 0


def test_a_finished_sweep_sets_the_timestamp_to_its_end(client):
    run_sweep()
    finished = Lease.objects.get(name="reaper").last_finished_at

    text = client.get("/metrics").content.decode()

    assert value(text, "conveyor_reaper_last_sweep_timestamp_seconds") == pytest.approx(finished.timestamp())
