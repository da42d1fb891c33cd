"""The workflow admin: a "Run now" action (and button) that reports the new run's id, and
the workflow's page with its recent runs (label, icon, coloured dot) and its runs per
status over the last 24 hours."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from executions.models import Execution
from executions.presentation import LOOKS
from tests.factories import make_execution, make_workflow
from tests.ui import staff_client

pytestmark = [pytest.mark.django_db]
LIST = "/admin/executions/workflow/"


def test_the_run_now_action_queues_a_manual_run_of_each_workflow_and_says_which(client):
    operator, _ = staff_client()
    first, second = make_workflow(name="first"), make_workflow(name="second")

    response = operator.post(LIST, {"action": "run_now", "_selected_action": [first.pk, second.pk]}, follow=True)

    runs = Execution.objects.filter(trigger_type="manual")
    assert {run.workflow_id for run in runs} == {first.pk, second.pk}
    html = response.content.decode()
    for run in runs:
        assert f"{run.workflow.name.capitalize()}: run" in html and str(run.pk) in html and "queued" in html


def test_a_disabled_workflow_is_not_run_and_the_operator_is_told(client):
    operator, _ = staff_client()
    off = make_workflow(name="off", enabled=False)

    response = operator.post(LIST, {"action": "run_now", "_selected_action": [off.pk]}, follow=True)

    assert not Execution.objects.exists() and "is disabled" in response.content.decode()


def test_the_run_now_button_on_a_workflows_page(client):
    operator, _ = staff_client()
    workflow = make_workflow()
    assert 'id="run-now-button"' in operator.get(f"{LIST}{workflow.pk}/change/").content.decode()

    operator.post(f"{LIST}{workflow.pk}/run-now/")

    assert Execution.objects.get().workflow == workflow


def test_a_workflows_page_shows_recent_runs_and_counts_for_the_last_24_hours(client):
    operator, _ = staff_client()
    workflow = make_workflow(name="billing")
    for status in ("success", "success", "error"):
        make_execution(workflow, status=status)
    make_execution(workflow, status="system_error", error_type="system", error_code="P-0003")
    make_execution(workflow, status="error", created_at=timezone.now() - timedelta(days=2))  # outside the window

    html = operator.get(f"{LIST}{workflow.pk}/change/").content.decode()

    counts = dict(re.findall(r'class="cv-count" data-status="(\w+)".*?<strong>(\d+)</strong>', html))
    assert counts == {"pending": "0", "running": "0", "success": "2", "error": "1", "system_error": "1",
                      "cancelled": "0", "skipped": "0"}  # fmt: skip
    dot = 'class="cv-dot" data-status="system_error" title="System Error" style="display:inline-block;width:10px;'
    assert dot in html and f"border-radius:50%;background:{LOOKS['system_error'].colour}" in html
    assert "\u26a0 System Error" in html and "<code>P-0003</code>" in html
    assert "All runs of this workflow" in html
