"""The reaper's sweep, called directly (the process boundary is tested end to end
elsewhere), with time controlled by time-machine."""

import uuid
from datetime import timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from executions.models import Execution, Step, Transition
from executions.transitions import start_step
from failures.statuses import ExecutionStatus
from reaper import lease
from reaper.sweep import run_sweep, sweep
from tests.factories import make_execution, make_workflow

S = ExecutionStatus
pytestmark = pytest.mark.django_db


def running(workflow, *, heartbeat_age_s: float, deadline_in_s: float = 3600):
    now = timezone.now()
    return make_execution(
        workflow,
        status=S.RUNNING,
        claim_token=uuid.uuid4(),
        started_at=now - timedelta(seconds=heartbeat_age_s),
        heartbeat_at=now - timedelta(seconds=heartbeat_age_s),
        deadline_at=now + timedelta(seconds=deadline_in_s),
    )


@override_settings(START_THRESHOLD_S=900)
def test_a_pending_run_past_the_start_threshold_is_reaped_as_p0005():
    workflow = make_workflow()
    old = make_execution(workflow, queued_at=timezone.now() - timedelta(minutes=16))
    fresh = make_execution(workflow, queued_at=timezone.now() - timedelta(minutes=14))
    report = sweep()
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, old.error_type, old.error_category, old.error_code) == (
        S.SYSTEM_ERROR, "system", "infrastructure", "P-0005",
    )  # fmt: skip
    assert "never picked up" in old.customer_message and "safe to re-run" in old.customer_message
    assert fresh.status == S.PENDING
    assert report.reaped == {"P-0005": 1}
    assert Transition.objects.filter(execution=old, actor="reaper", error_code="P-0005").exists()


@override_settings(STALE_AFTER_S=60)
def test_a_stale_run_with_no_step_is_p0001_and_with_a_step_is_p0003():
    workflow = make_workflow()
    no_step = running(workflow, heartbeat_age_s=120)
    with_step = running(workflow, heartbeat_age_s=120)
    Step.objects.create(execution=with_step, step_id="a", action="transform", position=0)
    alive = running(workflow, heartbeat_age_s=5)
    sweep()
    for run in (no_step, with_step, alive):
        run.refresh_from_db()
    assert (no_step.status, no_step.error_code) == (S.SYSTEM_ERROR, "P-0001")
    assert no_step.safe_to_rerun
    assert (with_step.status, with_step.error_code) == (S.SYSTEM_ERROR, "P-0003")
    assert "may have partly run" in with_step.customer_message
    assert alive.status == S.RUNNING


def test_a_run_past_its_deadline_is_e0001():
    run = running(make_workflow(), heartbeat_age_s=1, deadline_in_s=-1)
    sweep()
    run.refresh_from_db()
    assert (run.status, run.error_code, run.error_category) == (S.SYSTEM_ERROR, "E-0001", "workflow_engine")


@override_settings(STALE_AFTER_S=60)
def test_a_heartbeat_that_comes_back_between_the_scan_and_the_write_wins(monkeypatch):
    run = running(make_workflow(), heartbeat_age_s=120)
    import reaper.sweep as sweep_module

    real_fail = sweep_module.fail

    def heartbeat_then_fail(pk, *args, **kwargs):
        # The supervisor refreshes the heartbeat after the scan listed the run: the CAS
        # itself re-checks staleness, so the reaper's write must lose.
        Execution.objects.filter(pk=pk).update(heartbeat_at=timezone.now())
        return real_fail(pk, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "fail", heartbeat_then_fail)
    report = sweep()
    run.refresh_from_db()
    assert run.status == S.RUNNING and report.reaped == {}


@override_settings(STALE_AFTER_S=60)
def test_a_step_started_by_the_supervisor_turns_p0001_into_p0003():
    run = running(make_workflow(), heartbeat_age_s=120)
    assert start_step(run.id, run.claim_token, step_id="a", action="transform", position=0)
    # start_step refreshed the heartbeat; let it go stale again
    Execution.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=120))
    sweep()
    run.refresh_from_db()
    assert run.error_code == "P-0003"


@override_settings(START_THRESHOLD_S=60, REAPER_BATCH_SIZE=3)
def test_the_reaper_works_through_more_runs_than_one_batch():
    workflow = make_workflow()
    runs = [make_execution(workflow, queued_at=timezone.now() - timedelta(minutes=5)) for _ in range(8)]
    report = sweep()
    assert report.reaped == {"P-0005": 8}
    assert set(Execution.objects.filter(pk__in=[r.pk for r in runs]).values_list("status", flat=True)) == {
        S.SYSTEM_ERROR
    }


def test_one_failing_run_does_not_stop_the_sweep(monkeypatch):
    workflow = make_workflow()
    runs = [make_execution(workflow, queued_at=timezone.now() - timedelta(hours=1)) for _ in range(3)]
    import reaper.sweep as sweep_module

    real_fail = sweep_module.fail
    calls = {"n": 0}

    def flaky_fail(pk, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected")
        return real_fail(pk, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "fail", flaky_fail)
    report = sweep()
    assert report.errors == 1 and report.reaped == {"P-0005": 2}
    assert Execution.objects.filter(pk__in=[r.pk for r in runs], status=S.SYSTEM_ERROR).count() == 2


def test_only_one_sweep_runs_at_a_time_through_the_lease():
    assert lease.acquire("reaper", "someone-else", 300)
    report = run_sweep()
    assert report.acquired is False
    lease.release("reaper", "someone-else")
    assert run_sweep().acquired is True


def test_an_expired_lease_is_taken_over():
    assert lease.acquire("reaper", "dead-holder", 1)
    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        assert lease.acquire("reaper", "new-holder", 60)


def test_terminal_runs_are_never_touched():
    workflow = make_workflow()
    done = make_execution(workflow, status=S.SUCCESS, queued_at=timezone.now() - timedelta(days=1))
    sweep()
    done.refresh_from_db()
    assert done.status == S.SUCCESS
