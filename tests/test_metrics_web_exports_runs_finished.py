"""The web process's /metrics carries conveyor_runs_finished_total (the error budget's
SLI): every terminal status from the start, at 0 until a run reaches it, and the runs
this process finished itself, here one cancelled through the API. The workers' exporters
carry theirs (tests/test_metrics_counters_summed_across_two_workers.py)."""

import pytest
from django.core.cache import cache

from failures.statuses import TERMINAL
from observability.scrape import value
from tests.factories import make_execution, make_workflow
from tests.ui import api_client, member

pytestmark = pytest.mark.django_db(transaction=True)


def finished(client) -> dict[str, float | None]:
    text = client.get("/metrics").content.decode()
    return {status: value(text, "conveyor_runs_finished_total", status=status) for status in sorted(TERMINAL)}


def test_the_web_exports_every_terminal_status_and_counts_the_run_its_api_cancelled(client, settings):
    settings.METRICS_QUEUES = []
    cache.clear()  # the API's rate limits
    user = member()
    run = make_execution(make_workflow(user.membership.organization), status="pending")
    before = finished(client)
    assert None not in before.values(), before

    response = api_client(user).post(f"/api/runs/{run.pk}/cancel/")

    assert response.status_code == 200, response.content
    after = finished(client)
    assert {status: after[status] - before[status] for status in before if after[status] != before[status]} == {
        "cancelled": 1
    }
