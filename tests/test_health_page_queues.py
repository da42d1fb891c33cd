"""The health page's queues: each queue's depth read from SQS (moto over HTTP) through the
/metrics cache, and the runs queue's pending runs with the oldest of them; an SQS endpoint
that never answers costs the page one short timeout and is shown as unreachable, never as
a made-up depth."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
import time_machine

from failures.statuses import ExecutionStatus as S
from observability.collectors import QUEUE_DEPTHS
from tests.clock import utc
from tests.factories import make_execution, make_workflow
from tests.ui import staff_client

pytestmark = pytest.mark.django_db

NOW = utc(2030, 1, 10, 12, 7, 30)


@pytest.fixture(autouse=True)
def fresh_cache():
    QUEUE_DEPTHS.clear()
    yield
    QUEUE_DEPTHS.clear()


def row(page: str, queue: str) -> str:
    start = page.index(f'data-queue="{queue}"')
    return page[start : page.index("</tr>", start)]


def test_each_queues_depth_and_the_oldest_pending_run_are_shown(settings, moto_endpoint, sqs_queues):
    settings.SQS_ENDPOINT_URL = moto_endpoint
    settings.QUEUE_PREFIX = sqs_queues.prefix
    settings.METRICS_QUEUES = ["runs", "maintenance", "dead-letter"]
    for body in ("one", "two", "three"):
        sqs_queues.send_raw("runs", body)
    sqs_queues.send_raw("dead-letter", "poison")
    workflow = make_workflow()
    with time_machine.travel(NOW, tick=False):
        oldest = make_execution(workflow, status=S.PENDING, queued_at=NOW - timedelta(minutes=7))
        make_execution(workflow, status=S.PENDING, queued_at=NOW - timedelta(minutes=1))
        make_execution(workflow, status=S.RUNNING, queued_at=NOW - timedelta(minutes=30))  # not pending
        client, _ = staff_client()

        page = client.get("/admin/health/").content.decode()

    runs = row(page, "runs")
    assert "<td>3</td>" in runs  # visible messages
    assert "<td>2</td>" in runs  # pending runs
    assert f"/admin/executions/execution/{oldest.pk}/change/" in runs and "queued 7\xa0minutes ago" in runs
    assert "cv-state-ok" in runs
    assert "<td>1</td>" in row(page, "dead-letter")
    assert "<td>0</td>" in row(page, "maintenance")


def test_an_sqs_endpoint_that_never_answers_shows_the_queues_unreachable(settings, sqs_queues):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections in the kernel, never reads or answers
    try:
        settings.SQS_ENDPOINT_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.QUEUE_PREFIX = sqs_queues.prefix
        settings.METRICS_QUEUES = ["runs", "maintenance", "dead-letter"]
        settings.METRICS_QUEUE_TIMEOUT_S = 0.5
        client, _ = staff_client()

        response = client.get("/admin/health/")

        assert response.status_code == 200
        page = response.content.decode()
        for queue in ("runs", "maintenance", "dead-letter"):
            assert "unreachable" in row(page, queue)
            assert "<td>—</td>" in row(page, queue)  # never read: no depth made up
        assert "Availability over 30 days" in page  # the rest of the page answers
    finally:
        silent.close()
