"""The live /metrics output (django-prometheus's metrics, the pipeline's counters and the
project's collectors, with data in every series) passes `promtool check metrics`."""

import shutil
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from observability.scrape import value
from pipeline import metrics
from tests.factories import make_execution, make_org, make_workflow

pytestmark = pytest.mark.django_db


def test_the_live_metrics_output_passes_promtool_check_metrics(client, settings, sqs_queues):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool is missing: apt-get install -y prometheus (Debian's package carries it)")
    settings.SQS_ENDPOINT_URL = sqs_queues.endpoint_url
    settings.QUEUE_PREFIX = sqs_queues.prefix
    settings.METRICS_MANAGED_ORGS = ["acme"]
    workflow = make_workflow(make_org("acme"), name="billing")
    now = timezone.now()
    make_execution(workflow, status="system_error", error_type="system", error_category="database",
                   error_code="C-0002", finished_at=now)  # fmt: skip
    make_execution(workflow, status="error", error_type="user", error_category="workflow", finished_at=now)
    make_execution(workflow, status="pending", queued_at=now - timedelta(minutes=3))
    metrics.EXECUTION_DURATION.labels(status="success", error_type="none").observe(0.2)
    metrics.START_DELAY.observe(0.1)
    metrics.CLAIMS.labels(outcome="claimed").inc(0)

    text = client.get("/metrics").content.decode()
    assert value(text, "conveyor_queue_depth", queue="runs") == 0
    assert value(text, "conveyor_workflow_errors", workflow="billing", status="system_error") == 1

    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
