"""Two real worker processes, each with its own exporter (CONVEYOR_WORKER_METRICS_PORT)
over its own multiprocess directory, as production runs them (docs/decisions/
0005-worker-metrics.md): the runs split between them, each exporter counts what its
worker did, and the sum over both is every run."""

import socket
import urllib.request
from collections import Counter

import pytest

from executions.enqueue import enqueue
from executions.models import Execution
from observability.scrape import value
from tests.e2e import pipeline, sleeping, wait_for, wait_status  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
RUNS = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> str:
    def attempt():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return response.read().decode()
        except OSError:
            return None

    return wait_for(attempt, timeout=15, message=f"no worker exporter on port {port}")


def test_each_worker_exports_its_own_counters_and_their_sum_counts_every_run(pipeline, tmp_path):  # noqa: F811
    ports, workers = [], []
    for index in range(2):
        directory = tmp_path / f"worker-{index}"
        directory.mkdir()
        ports.append(free_port())
        workers.append(
            pipeline.worker(
                concurrency=1,
                PROMETHEUS_MULTIPROC_DIR=directory,
                CONVEYOR_WORKER_METRICS_PORT=ports[-1],
                CONVEYOR_WORKER_METRICS_ADDR="127.0.0.1",
            )
        )
    workflow = pipeline.workflow(sleeping(0.4), runtime="inline")

    ids = [enqueue(workflow, trigger_type="manual").execution.pk for _ in range(RUNS)]
    assert all(wait_status(pk, timeout=60).status == "success" for pk in ids)

    texts = [scrape(port) for port in ports]
    claimed = [value(text, "conveyor_claims_total", outcome="claimed") or 0 for text in texts]
    completed = [
        value(text, "conveyor_transitions_total", from_status="running", to_status="success") or 0 for text in texts
    ]
    durations = [value(text, "conveyor_execution_duration_seconds_count", status="success") or 0 for text in texts]
    finished = [value(text, "conveyor_runs_finished_total", status="success") or 0 for text in texts]
    assert sum(claimed) == sum(completed) == sum(durations) == sum(finished) == RUNS
    assert finished == claimed  # the error budget's SLI is summed over the workers' exporters too
    # Each exporter counts exactly the runs its own pool process recorded on the run.
    by_pid = Counter(int(w.split("pid=")[1].split()[0]) for w in Execution.objects.values_list("worker", flat=True))
    ran = [sum(by_pid[pid] for pid in worker.child_pids()) for worker in workers]
    assert claimed == ran
    assert all(n > 0 for n in claimed), f"the runs did not split between the workers: {claimed}"
