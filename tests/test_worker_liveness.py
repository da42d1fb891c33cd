"""A worker's consumer liveness is visible and probeable: its exporter serves the last
completed receive per queue and /healthz + /readyz; its row in the database feeds
`manage.py worker_health`; an SQS outage makes it degraded (readiness fails, liveness
holds); a worker that is gone is reported gone; and a worker whose event loop stops
turning exits non-zero for its process manager."""

from __future__ import annotations

import time
import urllib.request

import pytest
from django.core.management import call_command

from messaging.models import WorkerLiveness
from tests.e2e import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAST = {
    "CONVEYOR_CONSUMER_STALL_MARGIN_S": "2",
    "CONVEYOR_CONSUMER_UNHEALTHY_AFTER_S": "4",
    "CONVEYOR_WORKER_LIVENESS_INTERVAL_S": "0.5",
}


def health(*args: str) -> int:
    try:
        call_command("worker_health", *args)
    except SystemExit as exit:
        return int(exit.code)
    return 0


def row_status(node: str) -> str | None:
    row = WorkerLiveness.objects.filter(node=node).first()
    return row.status if row else None


@pytest.fixture
def watched_worker(pipeline):
    port = free_port()
    worker = pipeline.worker(CONVEYOR_WORKER_METRICS_PORT=port, **FAST)
    node = wait_for(lambda: WorkerLiveness.objects.values_list("node", flat=True).first(), timeout=20)
    return worker, port, node


def test_a_receiving_worker_is_healthy_on_every_view(watched_worker):
    worker, port, node = watched_worker
    url = f"http://127.0.0.1:{port}"

    assert wait_for(lambda: row_status(node) == "ok", timeout=10)
    assert health() == 0 and health("--worker", node) == 0 and health("--url", url) == 0
    with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
        assert response.status == 200
    metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    prefix = 'conveyor_consumer_last_receive_timestamp_seconds{queue="runs"}'
    line = next(row for row in metrics.splitlines() if row.startswith(prefix))
    assert time.time() - float(line.rsplit(" ", 1)[1]) < 10


def test_an_sqs_outage_makes_the_worker_degraded_not_stalled(watched_worker, sqs_proxy):
    worker, port, node = watched_worker
    url = f"http://127.0.0.1:{port}"
    sqs_proxy.cut("reset")
    try:
        assert wait_for(lambda: row_status(node) == "degraded", timeout=20)
        assert health("--worker", node) == 1 and health("--url", url) == 1
        assert health("--worker", node, "--liveness") == 0  # restarting it would not bring SQS back
        status, _ = _get(f"{url}/readyz")
        assert status == 503 and _get(f"{url}/healthz")[0] == 200
    finally:
        sqs_proxy.restore()
    assert wait_for(lambda: row_status(node) == "ok", timeout=20)
    assert health("--worker", node) == 0


def test_a_killed_worker_is_reported_gone(watched_worker):
    worker, port, node = watched_worker
    assert wait_for(lambda: row_status(node) == "ok", timeout=10)
    worker.kill()
    worker.wait(timeout=10)
    time.sleep(2)
    assert health("--worker", node, "--max-age", "1.5") == 2
    assert health("--url", f"http://127.0.0.1:{port}") == 2  # unreachable


def test_a_worker_whose_event_loop_stops_turning_exits_for_its_process_manager(pipeline):
    worker = pipeline.worker(
        CONVEYOR_FAULT_INJECTION="consumer-loop-freeze", CONVEYOR_CONSUMER_EXIT_AFTER_S="5", **FAST
    )
    assert worker.wait(timeout=60) == 70, worker.log_text()[-3000:]
    assert "event loop has not turned for" in worker.log_text()
    assert WorkerLiveness.objects.get().status == "stalled"


def _get(url: str) -> tuple[int, bytes]:
    import urllib.error

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
