"""After real runs through a real worker, ending in every terminal status, /metrics shows
each of them by status and error type (system errors apart, by category), and the
worker's counters and histograms say the same: claims, transitions, durations by final
status, start delays, runs finished by first terminal status."""

import socket

import pytest

from executions.enqueue import enqueue
from executions.models import Execution
from executions.transitions import transition
from failures.statuses import TERMINAL, ErrorType
from observability.scrape import value
from tests.e2e import NOOP, calling, pipeline, wait_status  # noqa: F401
from tests.factories import make_execution, make_org, make_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_terminal_status_shows_in_the_database_gauges_and_the_worker_counters(pipeline, client, settings):  # noqa: F811
    settings.METRICS_QUEUES = []
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    pipeline.worker(concurrency=1, CONVEYOR_HTTP_ALLOWED_NETWORKS="127.0.0.0/8", CONVEYOR_DEFAULT_RUNTIME="inline")
    org = make_org()
    refused = {
        "steps": [{"id": "call", "action": "http_request", "config": {"url": f"http://127.0.0.1:{closed_port()}/"}}]
    }
    definitions = {
        "success": NOOP,
        "user": calling("workflows.actions.examples.fail"),
        "external": refused,
        "database": calling("workflows.actions.examples.query_missing_table"),
        "auth": calling("workflows.actions.examples.read_with_wrong_key"),
    }
    runs = {
        # inline: the database callable runs only there (the isolated child has no database)
        name: enqueue(
            make_workflow(org, definition=definition, name=name, runtime="inline"), trigger_type="manual"
        ).execution.pk
        for name, definition in definitions.items()
    }
    disabled = make_workflow(org, name="disabled", enabled=False)
    runs["skipped"] = enqueue(disabled, trigger_type="manual").execution.pk
    cancelled = make_execution(make_workflow(org, name="cancelled"))
    assert transition(cancelled.pk, "cancelled", actor="api", reason="cancelled by its user")
    ended = {name: wait_status(pk, timeout=60) for name, pk in runs.items()}

    assert {name: (e.status, e.error_type, e.error_code) for name, e in ended.items()} == {
        "success": ("success", "", ""),
        "user": ("error", ErrorType.USER, ""),
        "external": ("error", ErrorType.EXTERNAL, ""),
        "database": ("system_error", ErrorType.SYSTEM, "C-0002"),
        "auth": ("system_error", ErrorType.SYSTEM, "C-0004"),
        "skipped": ("skipped", "", ""),
    }

    text = client.get("/metrics").content.decode()
    assert value(text, "conveyor_executions", status="success", error_type="none") == 1
    assert value(text, "conveyor_executions", status="error", error_type="user") == 1
    assert value(text, "conveyor_executions", status="error", error_type="external") == 1
    assert value(text, "conveyor_executions", status="system_error", error_type="system") == 2
    assert value(text, "conveyor_executions", status="skipped", error_type="none") == 1
    assert value(text, "conveyor_executions", status="cancelled", error_type="none") == 1
    assert value(text, "conveyor_executions") == Execution.objects.filter(status__in=TERMINAL).count() == 7
    assert value(text, "conveyor_system_errors_by_category", error_category="database") == 1
    assert value(text, "conveyor_system_errors_by_category", error_category="auth") == 1
    assert value(text, "conveyor_system_errors_by_category") == 2
    assert value(text, "conveyor_in_flight_runs") == 0

    # The worker's own counters (its multiprocess directory).
    assert pipeline.metric("conveyor_claims_total", outcome="claimed") == 5
    assert pipeline.metric("conveyor_transitions_total", from_status="running", to_status="system_error") == 2
    assert pipeline.metric("conveyor_transitions_total", from_status="running", to_status="error") == 2
    assert pipeline.metric("conveyor_transitions_total", from_status="pending", to_status="skipped") == 1
    assert pipeline.metric("conveyor_classified_total", error_type="system") == 2
    assert pipeline.metric("conveyor_execution_duration_seconds_count", status="success", error_type="none") == 1
    assert pipeline.metric("conveyor_execution_duration_seconds_count", status="error", error_type="user") == 1
    assert pipeline.metric("conveyor_execution_duration_seconds_count", status="error", error_type="external") == 1
    assert pipeline.metric("conveyor_execution_duration_seconds_count", status="system_error", error_type="system") == 2
    assert pipeline.metric("conveyor_start_delay_seconds_count") == 5
    # The error budget's SLI counts each run once, in the process that finished it: the
    # worker its five and the skipped one; the cancelled one was this process's.
    assert {status: pipeline.metric("conveyor_runs_finished_total", status=status) for status in sorted(TERMINAL)} == {
        "cancelled": 0,
        "error": 2,
        "skipped": 1,
        "success": 1,
        "system_error": 2,
    }
