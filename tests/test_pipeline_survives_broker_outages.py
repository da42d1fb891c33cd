"""The platform heals itself after an SQS outage of any shape, without restarting a process.

The whole platform runs as production runs it — a runs worker, a maintenance worker
(the reaper), beat and the web server, real processes — with SQS behind the loopback
proxy. Each outage shape (refused, reset, black hole, half-open: tests/harness/tcp_proxy.py)
is cut for about 5 s and then for about 30 s, and one shape for about 120 s. After each
restore, the first run triggered through the web API completes within the consumer's
watchdog threshold plus the long-poll wait plus 10 s; the reaper sweeps again; the probes
say healthy; and no process was restarted. During the long outage the liveness probe
stays 200 (restarting a worker would not bring SQS back) while the readiness probe says
the consumer cannot receive.
"""

from __future__ import annotations

import time

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from executions.models import Execution
from reaper.models import Lease
from tests.e2e import wait_for, wait_status
from tests.ui import member

# Mostly waiting out outages: one xdist group, so they share a worker and leave the other
# one to the CPU-bound tests (Makefile: -n 2 --dist loadgroup).
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("long")]

SHAPES = ("refuse", "reset", "blackhole", "half-open")
WAIT_S = 1  # the e2e long poll (tests/harness/processes.py: E2E_THRESHOLDS)
MARGIN_S = 4
WATCHDOG_S = WAIT_S + MARGIN_S  # no completed receive for this long: the consumer recovers
RECOVERY_BUDGET_S = WATCHDOG_S + WAIT_S + 10  # from the restore to the first run's success
OUTAGE_ENV = {
    "CONVEYOR_CONSUMER_STALL_MARGIN_S": MARGIN_S,
    "CONVEYOR_CONSUMER_UNHEALTHY_AFTER_S": 8,
    # A run triggered just after the restore must not be aged as P-0005 while the
    # consumer reconnects (the e2e default is 6 s).
    "CONVEYOR_START_THRESHOLD_S": 120,
    "CONVEYOR_SQS_READ_TIMEOUT_S": 4,
    "CONVEYOR_SCHEDULE_TICK_S": 1,
    "CONVEYOR_WORKER_LIVENESS_INTERVAL_S": 1,
    "CONVEYOR_DEFAULT_RUNTIME": "inline",
}


@pytest.fixture
def platform(pipeline):
    return pipeline.platform(**OUTAGE_ENV)


@pytest.fixture
def customer():
    user = member()
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key


def run_through_the_api(platform, workflow, token: str, *, budget: float, since: float) -> float:
    """Trigger a run through the web process; returns the seconds from `since` to its success."""
    status, body = platform.trigger(workflow, token)
    assert status == 202, body
    remaining = max(1.0, budget - (time.monotonic() - since))
    run = wait_status(body["run_id"], timeout=remaining)
    assert run.status == "success", (run.status, run.error_code, run.error_message)
    return time.monotonic() - since


def reaper_swept_since(moment) -> bool:
    lease = Lease.objects.filter(name="reaper").first()
    return bool(lease and lease.last_finished_at and lease.last_finished_at > moment)


def outage(sqs_proxy, shape: str, seconds: float) -> float:
    sqs_proxy.cut(shape)
    time.sleep(seconds)
    sqs_proxy.restore()
    return time.monotonic()


@pytest.mark.parametrize("shape", SHAPES)
def test_every_process_recovers_on_its_own_after_a_short_and_a_long_outage(
    pipeline, platform, sqs_proxy, customer, shape
):
    user, token = customer
    workflow = pipeline.workflow(org=user.membership.organization, name=f"after-{shape}")
    assert run_through_the_api(platform, workflow, token, budget=30, since=time.monotonic()) < 30

    for seconds in (5, 30):
        failures_before = pipeline.metric("conveyor_consumer_receive_failures_total", queue="runs")
        cut_at = timezone.now()
        restored = outage(sqs_proxy, shape, seconds)

        elapsed = run_through_the_api(platform, workflow, token, budget=RECOVERY_BUDGET_S, since=restored)
        print(f"outage {shape} {seconds} s: first run after the restore succeeded in {elapsed:.1f} s")
        assert elapsed <= RECOVERY_BUDGET_S
        assert pipeline.metric("conveyor_consumer_receive_failures_total", queue="runs") > failures_before
        wait_for(lambda cut_at=cut_at: reaper_swept_since(cut_at), timeout=RECOVERY_BUDGET_S)
        for worker in ("runs", "maintenance"):
            wait_for(lambda worker=worker: platform.probe(worker, "/readyz")[0] == 200, timeout=RECOVERY_BUDGET_S)

    assert platform.all_running_unrestarted(), pipeline.processes.logs()
    assert "Unrecoverable error" not in platform.runs.log_text() + platform.maintenance.log_text()
    assert "SQS receive on runs failed" in platform.runs.log_text()  # the outage was not silent


def test_a_two_minute_half_open_outage_leaves_nothing_unrecorded(pipeline, platform, sqs_proxy, customer):
    user, token = customer
    org = user.membership.organization
    workflow = pipeline.workflow(org=org, name="manual")
    minutely = pipeline.workflow(
        org=org, name="minutely", trigger_type="schedule", trigger_config={"cron": "* * * * *"}
    )
    assert run_through_the_api(platform, workflow, token, budget=30, since=time.monotonic()) < 30

    cut_at = timezone.now()
    sqs_proxy.cut("half-open")
    time.sleep(60)
    # A minute in: the consumers cannot receive (readiness fails) but are not stalled:
    # liveness stays 200, so no orchestrator restarts a worker that SQS alone stopped.
    for worker in ("runs", "maintenance"):
        assert platform.probe(worker, "/healthz")[0] == 200
        status, details = platform.probe(worker, "/readyz")
        assert status == 503 and details["status"] == "degraded", details
    time.sleep(60)
    sqs_proxy.restore()
    restored, restored_at = time.monotonic(), timezone.now()

    elapsed = run_through_the_api(platform, workflow, token, budget=RECOVERY_BUDGET_S, since=restored)
    print(f"outage half-open 120 s: first run after the restore succeeded in {elapsed:.1f} s")
    assert elapsed <= RECOVERY_BUDGET_S
    wait_for(lambda: reaper_swept_since(restored_at), timeout=RECOVERY_BUDGET_S)

    # Two minute boundaries fell in the outage: the latest runs as the catch-up, the
    # other is recorded as a missed fire time; neither is lost, none happens twice.
    def outage_fire_times():
        low, high = _key(cut_at), _key(restored_at)
        rows = Execution.objects.filter(workflow=minutely, dispatch_key__isnull=False)
        return [run for run in rows if low < run.input.get("schedule", {}).get("fire_time", "") <= high]

    fire_times = wait_for(lambda: (rows := outage_fire_times()) and len(rows) >= 2 and rows, timeout=30)
    by_time = {}
    for run in fire_times:
        by_time.setdefault(run.input["schedule"]["fire_time"], []).append(run)
    assert len(by_time) == 2 and all(len(runs) == 1 for runs in by_time.values())
    earlier, latest = (by_time[key][0] for key in sorted(by_time))
    assert (earlier.status, earlier.error_code, earlier.steps_started) == ("system_error", "CS-0002", 0)
    caught_up = wait_status(latest.pk, timeout=30)
    assert caught_up.status == "success", (caught_up.error_code, caught_up.error_message)
    assert platform.all_running_unrestarted(), pipeline.processes.logs()


def _key(moment) -> str:
    from workflows.cron import fire_time_key

    return fire_time_key(moment)
