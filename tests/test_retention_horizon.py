"""Retention deletes exactly the finished runs (every terminal status) that finished before
the horizon (RETENTION_DAYS), with their steps and transition log, in small batches, and
counts them in conveyor_retention_deleted_total. Runs still in progress, however old,
and runs finished after the horizon stay."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from executions.models import Execution, Step, Transition
from failures.statuses import IN_PROGRESS, TERMINAL
from observability.retention import purge_expired
from tests.factories import make_execution, make_workflow

pytestmark = pytest.mark.django_db


def deleted(table: str) -> float:
    return REGISTRY.get_sample_value("conveyor_retention_deleted_total", {"table": table}) or 0.0


def with_history(workflow, status, *, days_ago, created_days_ago=None):
    now = timezone.now()
    execution = make_execution(
        workflow,
        status=status,
        created_at=now - timedelta(days=created_days_ago or days_ago),
        finished_at=(now - timedelta(days=days_ago)) if status in TERMINAL else None,
    )
    Step.objects.create(execution=execution, step_id="a", action="transform", position=0)
    Transition.objects.create(execution=execution, from_status="pending", to_status="running", actor="consumer")
    return execution


def test_only_finished_runs_past_the_horizon_go_with_their_steps_and_transitions(settings):
    settings.RETENTION_DAYS = 90
    workflow = make_workflow()
    expired = [with_history(workflow, status, days_ago=91) for status in sorted(TERMINAL)]
    kept = [with_history(workflow, status, days_ago=89) for status in sorted(TERMINAL)]
    kept += [with_history(workflow, status, days_ago=400) for status in sorted(IN_PROGRESS)]  # never finished
    kept.append(with_history(workflow, "system_error", days_ago=1, created_days_ago=120))  # finished recently
    before = {table: deleted(table) for table in ("executions", "steps", "transitions")}

    report = purge_expired(batch_size=2)

    assert set(Execution.objects.values_list("pk", flat=True)) == {e.pk for e in kept}
    assert not Step.objects.filter(execution_id__in=[e.pk for e in expired]).exists()
    assert not Transition.objects.filter(execution_id__in=[e.pk for e in expired]).exists()
    assert Step.objects.count() == Transition.objects.count() == len(kept)
    assert (report.executions, report.steps, report.transitions) == (5, 5, 5)
    assert report.batches == 3  # batches of 2: 2 + 2 + 1
    assert not report.more
    assert deleted("executions") - before["executions"] == 5
    assert deleted("steps") - before["steps"] == 5
    assert deleted("transitions") - before["transitions"] == 5


def test_a_pass_stops_after_its_batch_limit_and_the_next_pass_goes_on(settings):
    settings.RETENTION_DAYS = 30
    workflow = make_workflow()
    for _ in range(5):
        with_history(workflow, "success", days_ago=31)

    first = purge_expired(batch_size=2, max_batches=1)
    assert (first.executions, first.more) == (2, True)
    assert Execution.objects.count() == 3

    second = purge_expired(batch_size=2, max_batches=10)
    assert (second.executions, second.more) == (3, False)
    assert Execution.objects.count() == 0


def test_a_rerun_of_a_purged_run_stays_and_loses_only_its_link(settings):
    settings.RETENTION_DAYS = 90
    workflow = make_workflow()
    original = with_history(workflow, "system_error", days_ago=100)
    rerun = make_execution(workflow, status="success", finished_at=timezone.now(), rerun_of=original)

    purge_expired()

    rerun.refresh_from_db()
    assert rerun.rerun_of_id is None
    assert not Execution.objects.filter(pk=original.pk).exists()
