"""With PROMETHEUS_MULTIPROC_DIR set (several web processes on one host), the web's
/metrics serves the counters of every process that wrote to the directory, summed, next
to the database gauges."""

import subprocess
import sys

import pytest

from observability.scrape import value

pytestmark = pytest.mark.django_db

WRITER = """
from executions import metrics
metrics.RUNS_CREATED.labels(trigger_type="manual").inc({n})
metrics.ENQUEUE_FAILURES.labels(producer="manual", code="MS-0001").inc()
"""


def test_counters_written_by_two_processes_are_summed_by_the_web_metrics(client, settings, tmp_path, monkeypatch):
    settings.METRICS_QUEUES = []
    for n in (2, 3):
        subprocess.run(
            [sys.executable, "-c", WRITER.format(n=n)],
            env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
            cwd=settings.BASE_DIR,
            check=True,
            timeout=60,
        )
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    text = client.get("/metrics").content.decode()

    assert value(text, "conveyor_runs_created_total", trigger_type="manual") == 5
    assert value(text, "conveyor_enqueue_failures_total", producer="manual", code="MS-0001") == 2
    assert value(text, "conveyor_executions", status="system_error", error_type="system") == 0
