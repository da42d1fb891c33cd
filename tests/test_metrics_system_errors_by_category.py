"""conveyor_system_errors_by_category{error_category}: what the infrastructure alert reads.
It matches both error statuses and lists every system category, even at zero."""

from datetime import timedelta

import pytest
from django.utils import timezone

from failures.catalogue import CATALOGUE, SYSTEM_CATEGORIES
from observability.scrape import matching, value
from tests.factories import make_execution, make_workflow

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queue_reads(settings):
    settings.METRICS_QUEUES = []


def failed(workflow, status, error_type, category, code="", *, seconds_ago=30):
    return make_execution(
        workflow,
        status=status,
        error_type=error_type,
        error_category=category,
        error_code=code,
        finished_at=timezone.now() - timedelta(seconds=seconds_ago),
    )


def test_every_system_category_is_exported_even_when_zero(client):
    text = client.get("/metrics").content.decode()

    series = {s.labels["error_category"]: s.value for s in matching(text, "conveyor_system_errors_by_category")}
    assert series == dict.fromkeys(SYSTEM_CATEGORIES, 0)
    assert {s.labels["error_code"] for s in matching(text, "conveyor_system_errors_by_code")} == set(CATALOGUE)


def test_system_errors_are_counted_by_category_and_code_whichever_error_status_they_carry(client):
    workflow = make_workflow()
    failed(workflow, "system_error", "system", "infrastructure", "P-0003")
    failed(workflow, "system_error", "system", "infrastructure", "P-0005")
    failed(workflow, "system_error", "system", "database", "C-0002")
    failed(workflow, "system_error", "system", "workflow_engine", "C-0001")
    # A system category under the other error status still counts: the gauge matches both.
    failed(workflow, "error", "system", "network_rpc", "N-0001")
    # User and external errors are not system errors.
    failed(workflow, "error", "user", "workflow")
    failed(workflow, "error", "external", "external_service")
    # Outside the window.
    failed(workflow, "system_error", "system", "database", "C-0002", seconds_ago=2 * 3600)

    text = client.get("/metrics").content.decode()

    assert value(text, "conveyor_system_errors_by_category", error_category="infrastructure") == 2
    assert value(text, "conveyor_system_errors_by_category", error_category="database") == 1
    assert value(text, "conveyor_system_errors_by_category", error_category="workflow_engine") == 1
    assert value(text, "conveyor_system_errors_by_category", error_category="network_rpc") == 1
    assert value(text, "conveyor_system_errors_by_category", error_category="auth") == 0
    assert value(text, "conveyor_system_errors_by_category") == 5
    assert value(text, "conveyor_system_errors_by_code", error_code="C-0001", error_category="workflow_engine") == 1
    assert value(text, "conveyor_system_errors_by_code", error_code="P-0003") == 1
