"""conveyor_executions{status, error_type}: runs that finished within the window, read from
the database at scrape time, with a system_error series even when none happened."""

from datetime import timedelta

import pytest
from django.utils import timezone

from failures.statuses import ERROR_STATUSES, TERMINAL
from observability.collectors import status_error_type_combinations
from observability.scrape import matching, value
from tests.factories import make_execution, make_workflow

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queue_reads(settings):
    settings.METRICS_QUEUES = []
    settings.METRICS_WINDOW_S = 3600


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def finished(workflow, status, error_type="", *, seconds_ago=60):
    return make_execution(
        workflow, status=status, error_type=error_type, finished_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def test_a_quiet_platform_exports_every_status_and_error_type_with_a_zero_system_error_series(client):
    text = scrape(client)

    series = {(s.labels["status"], s.labels["error_type"]): s.value for s in matching(text, "conveyor_executions")}
    assert series[("system_error", "system")] == 0
    assert set(series) == set(status_error_type_combinations())
    assert {status for status, _ in series} == set(TERMINAL)
    assert all(v == 0 for v in series.values())


def test_runs_finished_within_the_window_are_counted_by_status_and_error_type(client):
    workflow = make_workflow()
    for _ in range(2):
        finished(workflow, "success")
    finished(workflow, "error", "user")
    finished(workflow, "error", "external")
    for _ in range(3):
        finished(workflow, "system_error", "system")
    finished(workflow, "cancelled")
    finished(workflow, "skipped")
    make_execution(workflow, status="pending")
    make_execution(workflow, status="running")
    finished(workflow, "success", seconds_ago=7200)  # before the window
    finished(workflow, "system_error", "system", seconds_ago=7200)

    text = scrape(client)

    assert value(text, "conveyor_executions", status="success", error_type="none") == 2
    assert value(text, "conveyor_executions", status="error", error_type="user") == 1
    assert value(text, "conveyor_executions", status="error", error_type="external") == 1
    assert value(text, "conveyor_executions", status="system_error", error_type="system") == 3
    assert value(text, "conveyor_executions", status="cancelled", error_type="none") == 1
    assert value(text, "conveyor_executions", status="skipped", error_type="none") == 1
    assert value(text, "conveyor_executions") == 9  # neither in-flight runs nor runs before the window
    failed = sum(value(text, "conveyor_executions", status=s) for s in ERROR_STATUSES)
    assert failed == 5


def test_the_window_is_a_setting(client, settings):
    workflow = make_workflow()
    finished(workflow, "system_error", "system", seconds_ago=7200)
    settings.METRICS_WINDOW_S = 3 * 3600

    text = scrape(client)

    assert value(text, "conveyor_executions", status="system_error", error_type="system") == 1
    assert value(text, "conveyor_metrics_window_seconds") == 3 * 3600
