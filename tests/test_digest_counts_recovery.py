"""The failure digest counts recovery: runs that retried a step (a second attempt
recorded), runs that were resumes, and failed runs the retry policy left for an operator."""

from datetime import UTC, datetime, timedelta

import pytest

from executions.models import Step
from observability.digest import build_digest, render_text
from tests.factories import make_execution, make_org, make_workflow

pytestmark = pytest.mark.django_db

UNTIL = datetime(2030, 1, 10, 6, 0, tzinfo=UTC)
DAY = datetime(2030, 1, 9, 12, tzinfo=UTC)
ONE = [{"attempt": 1, "outcome": "success"}]
TWO = [{"attempt": 1, "outcome": "error"}, {"attempt": 2, "outcome": "success"}]


def test_the_digest_counts_retried_resumed_and_waiting_runs():
    org = make_org("acme")
    workflow = make_workflow(org)
    retried = make_execution(workflow, status="success", finished_at=DAY)
    Step.objects.create(execution=retried, step_id="a", action="transform", position=0, status="success", attempts=TWO)
    once = make_execution(workflow, status="success", finished_at=DAY)
    Step.objects.create(execution=once, step_id="a", action="transform", position=0, status="success", attempts=ONE)
    lost = make_execution(
        workflow, status="system_error", error_type="system", error_code="P-0003",
        error_category="infrastructure", finished_at=DAY, left_for_operator=True,
    )  # fmt: skip
    make_execution(workflow, status="success", trigger_type="resume", rerun_of=lost, finished_at=DAY)
    make_execution(workflow, status="success", trigger_type="resume", finished_at=DAY - timedelta(days=3))  # outside

    digest = build_digest(org, "daily", until=UNTIL)

    assert (digest.retried_runs, digest.resumed_runs, digest.left_for_operator) == (1, 1, 1)
    assert "Recovery: 1 runs retried a step, 1 runs were resumes of failed runs, 1 failed runs wait" in render_text(
        digest
    )
