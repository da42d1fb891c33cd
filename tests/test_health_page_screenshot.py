"""In headless Chromium: the health page renders for an operator who signed in to the admin
(the SLI and budget figures, the server-rendered SVG chart with its bars, queues, workers,
stuck runs), reached from the admin index; with CONVEYOR_SAVE_SCREENSHOTS=1 it is saved as
docs/health-page.png."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from executions.models import Execution
from messaging.models import WorkerLiveness
from observability import health
from observability.collectors import QUEUE_DEPTHS
from reaper.models import Lease
from reaper.sweep import LEASE_NAME
from tests.factories import make_execution, make_org, make_workflow
from tests.ui import PASSWORD, browser_page, live_server

pytestmark = [pytest.mark.django_db(transaction=True)]
DOCS = Path(__file__).resolve().parents[1] / "docs"
CODES = {"infrastructure": "P-0005", "database": "C-0002", "workflow_engine": "E-0001", "network_rpc": "N-0001"}


@pytest.fixture
def out_dir(tmp_path) -> Path:
    return DOCS if os.environ.get("CONVEYOR_SAVE_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
def queues(settings, moto_endpoint, sqs_queues):
    settings.SQS_ENDPOINT_URL = moto_endpoint
    settings.QUEUE_PREFIX = sqs_queues.prefix
    settings.METRICS_QUEUES = ["runs", "maintenance", "dead-letter"]
    QUEUE_DEPTHS.clear()
    for i in range(4):
        sqs_queues.send_raw("runs", f"run-{i}")
    sqs_queues.send_raw("dead-letter", "poison")
    yield sqs_queues
    QUEUE_DEPTHS.clear()


def add(workflow, status: str, at, n: int, **fields) -> None:
    Execution.objects.bulk_create(
        Execution(
            workflow=workflow,
            organization=workflow.organization,
            trigger_type="schedule",
            status=status,
            created_at=at - timedelta(seconds=3),
            queued_at=at - timedelta(seconds=3),
            finished_at=at,
            **fields,
        )
        for _ in range(n)
    )


@pytest.fixture
def platform():
    org = make_org("acme")
    billing, sync = make_workflow(org, name="billing-webhook"), make_workflow(org, name="crm-sync")
    now = timezone.now()
    for day in range(30):
        add(billing, "success", now - timedelta(days=day, hours=3), 400)
        add(sync, "error", now - timedelta(days=day, hours=5), 12, error_type="user", error_category="workflow")
        add(sync, "skipped", now - timedelta(days=day, hours=6), 3)
    # An outage 6 hours ago (the queue, then the database), and a trickle since.
    for minutes, category, n in [(360, "infrastructure", 9), (345, "infrastructure", 14), (330, "database", 6),
                                 (330, "infrastructure", 4), (120, "workflow_engine", 2), (40, "network_rpc", 1),
                                 (1000, "infrastructure", 2)]:  # fmt: skip
        add(billing, "system_error", now - timedelta(minutes=minutes), n, error_type="system",
            error_category=category, error_code=CODES[category])  # fmt: skip
    make_execution(billing, status="pending", queued_at=now - timedelta(minutes=22))
    make_execution(sync, status="running", queued_at=now - timedelta(minutes=50),
                   heartbeat_at=now - timedelta(minutes=4), deadline_at=now + timedelta(minutes=10))  # fmt: skip
    make_execution(billing, status="pending", queued_at=now - timedelta(seconds=40))
    health.roll_up(now)


def workers_and_reaper_reporting_now() -> None:
    """Created just before the page is read: a liveness row older than three intervals is
    shown as not reporting, a sweep older than three as late (loading the fixture's runs
    takes longer than that on a busy machine)."""
    now = timezone.now()
    Lease.objects.create(name=LEASE_NAME, last_finished_at=now - timedelta(seconds=35))
    runs = {"runs": {"state": "ok", "last_receive_at": now.isoformat()}}
    WorkerLiveness.objects.create(node="runs-1@web-1", status="ok", details={"queues": runs}, updated_at=now)
    maintenance = {"maintenance": {"state": "ok", "last_receive_at": now.isoformat()}}
    WorkerLiveness.objects.create(node="maint@web-1", status="ok", details={"queues": maintenance}, updated_at=now)
    WorkerLiveness.objects.create(node="runs-2@web-2", status="degraded", updated_at=now - timedelta(minutes=3),
                                  details={"queues": {"runs": {"state": "degraded", "last_receive_at": None,
                                                               "failures_in_a_row": 12}}})  # fmt: skip


def test_the_health_page_renders_in_the_browser_and_is_captured(settings, platform, queues, out_dir):
    from django.contrib.auth import get_user_model

    # Production's margins (a busy machine takes longer than three test intervals to sign in).
    settings.WORKER_LIVENESS_INTERVAL_S = 60
    settings.REAPER_INTERVAL_S = 60

    get_user_model().objects.create_superuser(username="operator", password=PASSWORD, email="")
    workers_and_reaper_reporting_now()
    with live_server() as url, browser_page(width=1400, height=1000) as page:
        page.goto(f"{url}/admin/login/?next=/admin/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.click("#cv-health-link a >> text=Platform health")
        page.wait_for_selector("#cv-sli")
        assert page.url == f"{url}/admin/health/"
        chart = page.locator("#cv-errors-chart svg.cv-chart")
        assert chart.is_visible()
        assert chart.locator("rect.cv-bar").count() == 7
        assert page.locator("#cv-sli .cv-figure").inner_text().endswith("%")
        assert page.locator("#cv-budget .cv-figure").is_visible()
        assert page.locator("#cv-queues tr[data-queue=runs]").inner_text().count("4") >= 1
        assert page.locator("#cv-workers tr[data-worker]").count() == 3
        assert page.locator("#cv-workers .cv-state-gone").count() == 1  # runs-2, silent for 3 minutes
        assert page.locator("#cv-stuck tr.cv-stuck-run").count() == 2
        assert "No open incident." in page.locator("#cv-incidents").inner_text()
        page.screenshot(path=str(out_dir / "health-page.png"), full_page=True)

    assert (out_dir / "health-page.png").stat().st_size > 10_000
