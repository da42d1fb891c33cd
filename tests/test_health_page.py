"""The health page (/admin/health/, staff only) on real rows in PostgreSQL: the SLI and the
error budget over 30 days (skipped and cancelled left out, the same figures whether the
hours are rolled up or counted live), system errors per 15 minutes by category over 24 h,
stuck runs, each worker's consumer liveness and the reaper's last sweep. Time is fixed with
time-machine."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from executions.models import Execution
from failures.statuses import ExecutionStatus as S
from messaging.models import WorkerLiveness
from observability import health
from observability.models import RunHour
from reaper.models import Lease
from reaper.sweep import LEASE_NAME
from tests.clock import utc
from tests.factories import make_execution, make_org, make_workflow
from tests.ui import member, staff_client

pytestmark = pytest.mark.django_db

NOW = utc(2030, 1, 10, 12, 7, 30)


@pytest.fixture(autouse=True)
def frozen(settings):
    settings.METRICS_QUEUES = []  # SQS is the queue test's (test_health_page_queues.py)
    settings.SLO_OBJECTIVE = 0.995
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def workflow():
    return make_workflow(make_org("acme"), name="billing")


def finished(workflow, status: str, at, n: int = 1, **fields) -> None:
    if status == S.SYSTEM_ERROR:
        fields = {"error_type": "system", "error_category": "infrastructure", "error_code": "P-0005", **fields}
    elif status == S.ERROR:
        fields = {"error_type": "user", "error_category": "workflow", **fields}
    Execution.objects.bulk_create(
        Execution(
            workflow=workflow,
            organization=workflow.organization,
            trigger_type="manual",
            status=status,
            created_at=at - timedelta(seconds=5),
            queued_at=at - timedelta(seconds=5),
            finished_at=at,
            **fields,
        )
        for _ in range(n)
    )


def mix(workflow) -> None:
    """Over the last 30 days: 900 success, 60 user errors, 36 external errors, 4 system
    errors (1,000 counted), 30 skipped and 20 cancelled; and 50 system errors 31 days ago."""
    for day in range(30):  # spread over the window, one batch a day, hours apart
        at = NOW - timedelta(days=day, hours=day % 5, minutes=7)
        finished(workflow, S.SUCCESS, at, 30)
        finished(workflow, S.ERROR, at, 2)
        finished(workflow, S.ERROR, at, 1 if day < 6 else 0, error_type="external", error_category="external_service")
        finished(workflow, S.SKIPPED, at, 1)
    finished(workflow, S.ERROR, NOW - timedelta(days=3), 30, error_type="external", error_category="external_service")
    for at in (NOW - timedelta(minutes=1), NOW - timedelta(hours=2), NOW - timedelta(days=9), NOW - timedelta(days=29)):
        finished(workflow, S.SYSTEM_ERROR, at)
    finished(workflow, S.CANCELLED, NOW - timedelta(hours=5), 20)
    finished(workflow, S.SYSTEM_ERROR, NOW - timedelta(days=31), 50)  # outside the window


def figures(page: str) -> tuple[float, float]:
    sli = float(re.search(r'data-sli="([0-9.]+)"', page).group(1))
    budget = float(re.search(r'data-budget-left="(-?[0-9.]+)"', page).group(1))
    return sli, budget


def test_the_sli_counts_success_and_both_errors_and_leaves_skipped_and_cancelled_out(workflow):
    mix(workflow)

    reading = health.sli(NOW)

    assert reading.counted == 1000
    assert reading.system_errors == 4
    assert reading.excluded == 50
    assert reading.ratio == pytest.approx(0.996)
    # 0.4% of runs failed against 0.5% allowed: a fifth of the budget is left.
    assert reading.budget_left == pytest.approx(0.2)
    assert reading.allowed_system_errors == pytest.approx(5.0)


def test_the_rolled_up_hours_and_the_live_tail_give_the_same_figures(workflow):
    mix(workflow)
    live = health.sli(NOW)
    assert live.rolled_up_until is None

    report = health.roll_up(NOW)
    rolled = health.sli(NOW)

    assert report.until == utc(2030, 1, 10, 12)
    assert rolled.rolled_up_until == utc(2030, 1, 10, 12)
    assert rolled.counts == live.counts
    # The hour of the day-old batch holds its 30 successes; the current hour is not rolled up.
    assert RunHour.objects.get(hour=utc(2030, 1, 9, 11), status=S.SUCCESS).runs == 30
    assert not RunHour.objects.filter(hour=utc(2030, 1, 10, 12)).exists()


def test_the_page_shows_the_sli_and_the_budget_left_to_staff(workflow):
    mix(workflow)
    health.roll_up(NOW)
    client, _ = staff_client()

    response = client.get("/admin/health/")

    assert response.status_code == 200
    page = response.content.decode()
    assert figures(page) == (pytest.approx(0.996), pytest.approx(0.2))
    assert "99.600 %" in page and "20.0 %" in page
    assert "1000 counted runs" in page and "4 system errors" in page
    assert "Skipped and cancelled runs (50) are not counted" in page
    assert "No open incident." in page


def test_an_overspent_budget_is_negative_and_says_so(workflow):
    finished(workflow, S.SUCCESS, NOW - timedelta(hours=1), 98)
    finished(workflow, S.SYSTEM_ERROR, NOW - timedelta(hours=1), 2)
    client, _ = staff_client()

    page = client.get("/admin/health/").content.decode()

    # 2% failed against 0.5% allowed: the budget is spent three times over.
    assert figures(page) == (pytest.approx(0.98), pytest.approx(-3.0))
    assert "overspent" in page


def test_the_page_is_refused_to_anonymous_users_and_to_members_who_are_not_staff(workflow):
    finished(workflow, S.SYSTEM_ERROR, NOW - timedelta(hours=1))
    anonymous = Client()
    customer = Client()
    customer.force_login(member(workflow.organization, username="alice"))

    for client in (anonymous, customer):
        response = client.get("/admin/health/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
        assert b"system errors" not in response.content


def test_the_admin_index_links_to_the_health_page():
    client, _ = staff_client()

    page = client.get("/admin/").content.decode()

    assert 'href="/admin/health/"' in page


def test_the_chart_counts_system_errors_per_quarter_hour_by_category_from_the_runs(workflow):
    # The chart's last bucket is 12:00-12:15 (the one of NOW), its first 12:15 yesterday.
    finished(workflow, S.SYSTEM_ERROR, utc(2030, 1, 10, 12, 1), 3)
    finished(workflow, S.SYSTEM_ERROR, utc(2030, 1, 10, 12, 6), 1, error_category="database", error_code="C-0002")
    finished(workflow, S.SYSTEM_ERROR, utc(2030, 1, 10, 11, 59), 2, error_category="database", error_code="C-0002")
    finished(workflow, S.SYSTEM_ERROR, utc(2030, 1, 9, 12, 20), 1)  # in the first bucket
    finished(workflow, S.SYSTEM_ERROR, utc(2030, 1, 9, 12, 14), 5)  # just before the 24 h: left out
    finished(workflow, S.ERROR, utc(2030, 1, 10, 12, 2), 7)  # a workflow's own errors: not the platform's

    chart = health.system_errors_chart(NOW)

    assert len(chart.starts) == 96
    assert chart.starts[0] == utc(2030, 1, 9, 12, 15)
    assert chart.starts[-1] == utc(2030, 1, 10, 12, 0)
    assert list(chart.by_category) == ["infrastructure", "database"]  # most errors first
    infrastructure, database = chart.by_category["infrastructure"], chart.by_category["database"]
    assert infrastructure[-1] == 3 and infrastructure[0] == 1 and sum(infrastructure) == 4
    assert database[-1] == 1 and database[-2] == 2 and sum(database) == 3
    assert chart.total == 7

    client, _ = staff_client()
    page = client.get("/admin/health/").content.decode()
    chart_at = page.index('class="cv-chart"')
    svg = page[chart_at : page.index("</svg>", chart_at)]
    bars = re.findall(r'data-series="([a-z_]+)" data-value="(\d+)"', svg)
    assert sorted(bars) == [("database", "1"), ("database", "2"), ("infrastructure", "1"), ("infrastructure", "3")]
    assert "Infrastructure (4)" in svg and "Database (3)" in svg
    assert "System errors over the last 24 hours (7)" in page


def test_stuck_runs_the_workers_liveness_and_the_reapers_last_sweep_are_shown(settings, workflow):
    settings.START_THRESHOLD_S = 15 * 60
    settings.WORKER_LIVENESS_INTERVAL_S = 10
    settings.REAPER_INTERVAL_S = 60
    lost = make_execution(workflow, status=S.PENDING, queued_at=NOW - timedelta(minutes=20))
    make_execution(workflow, status=S.PENDING, queued_at=NOW - timedelta(minutes=2))  # waiting, not stuck
    late = make_execution(
        workflow,
        status=S.RUNNING,
        queued_at=NOW - timedelta(hours=2),
        heartbeat_at=NOW,
        deadline_at=NOW - timedelta(minutes=1),
    )
    WorkerLiveness.objects.create(
        node="runs@host-1",
        status="ok",
        details={"queues": {"runs": {"state": "ok", "last_receive_at": "2030-01-10T12:07:20+00:00"}}},
        updated_at=NOW - timedelta(seconds=5),
    )
    WorkerLiveness.objects.create(
        node="runs@host-2",
        status="degraded",
        details={"queues": {"runs": {"state": "degraded", "last_receive_at": None, "failures_in_a_row": 7}}},
        updated_at=NOW - timedelta(minutes=10),
    )
    Lease.objects.create(name=LEASE_NAME, last_finished_at=NOW - timedelta(seconds=40))
    client, _ = staff_client()

    page = client.get("/admin/health/").content.decode()

    stuck = page[page.index('id="cv-stuck"') :]
    assert "Stuck runs (2)" in stuck
    assert stuck.count('class="cv-stuck-run"') == 2
    assert f"/admin/executions/execution/{lost.pk}/change/" in stuck and "never received" in stuck
    assert f"/admin/executions/execution/{late.pk}/change/" in stuck and "past its deadline" in stuck

    workers = page[page.index('id="cv-workers"') : page.index('id="cv-stuck"')]
    one = workers[workers.index('data-worker="runs@host-1"') : workers.index('data-worker="runs@host-2"')]
    two = workers[workers.index('data-worker="runs@host-2"') :]
    assert "cv-state-ok" in one and "not reporting" not in one and "last receive 12:07:20 UTC" in one
    assert "degraded" in two and "not reporting" in two and "7 failures in a row" in two

    reaper = page[page.index('id="cv-reaper"') : page.index('id="cv-queues"')]
    assert "2030-01-10 12:06:50" in reaper and "late" not in reaper


def test_a_reaper_that_has_not_swept_for_three_intervals_is_late(settings):
    settings.REAPER_INTERVAL_S = 60
    Lease.objects.create(name=LEASE_NAME, last_finished_at=NOW - timedelta(minutes=4))
    client, _ = staff_client()

    page = client.get("/admin/health/").content.decode()

    reaper = page[page.index('id="cv-reaper"') : page.index('id="cv-queues"')]
    assert "cv-state-late" in reaper
