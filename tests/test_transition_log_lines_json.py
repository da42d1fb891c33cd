"""With CONVEYOR_LOG_JSON=1 every transition of a run is one JSON log line carrying the
run id, workflow, organization, status, error type, category and code: the producer's
(create) in the producing process, the consumer's and the runtime's in the worker's log."""

import io
import json
import logging

import pytest
from django.utils.module_loading import import_string

from executions.enqueue import enqueue
from executions.models import Transition
from tests.e2e import calling, pipeline, wait_status  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def transition_lines(text: str, execution_id) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue  # Celery's start-up banner is printed, not logged
        record = json.loads(line)
        if record.get("event") == "transition" and record.get("execution_id") == str(execution_id):
            lines.append(record)
    return lines


@pytest.fixture
def producer_log(settings):
    """This process's log, formatted by the formatter the settings name for JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(import_string(settings.LOGGING["formatters"]["json"]["()"])())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_every_transition_is_one_json_line_with_run_workflow_organization_status_and_error(pipeline, producer_log):  # noqa: F811
    worker = pipeline.worker(concurrency=1, CONVEYOR_LOG_JSON=1, CONVEYOR_DEFAULT_RUNTIME="inline")
    workflow = pipeline.workflow(calling("workflows.actions.examples.query_missing_table"), runtime="inline")

    execution = wait_status(enqueue(workflow, trigger_type="manual").execution.pk)
    assert execution.status == "system_error"
    worker.wait_for_log('"status": "system_error"', timeout=10)

    lines = transition_lines(producer_log.getvalue(), execution.pk) + transition_lines(worker.log_text(), execution.pk)
    log = Transition.objects.filter(execution_id=execution.pk).order_by("at", "id")
    assert [(line["from_status"], line["status"]) for line in lines] == [(t.from_status, t.to_status) for t in log]
    assert [t.to_status for t in log] == ["pending", "running", "system_error"]
    for line in lines:
        assert line["workflow_id"] == workflow.pk
        assert line["organization_id"] == workflow.organization_id
        assert {"error_type", "error_category", "error_code"} <= set(line)
    assert (lines[-1]["error_type"], lines[-1]["error_category"], lines[-1]["error_code"]) == (
        "system",
        "database",
        "C-0002",
    )
