"""In headless Chromium: the admin's incident page renders (badge, facts, the SVG chart of
system errors per minute by code, affected runs, recovery, timeline) and is captured; with
CONVEYOR_SAVE_SCREENSHOTS=1 it is saved as docs/incident-page.png. The customer's run page
shows the incident notice in the same browser."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from failures.catalogue import Code
from incidents import services
from incidents.models import Incident
from tests.factories import make_org, make_workflow
from tests.incident_runs import detect_at, system_error_at
from tests.ui import browser_page, live_server, log_in, member

pytestmark = [pytest.mark.django_db(transaction=True)]
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture
def out_dir(tmp_path) -> Path:
    return DOCS if os.environ.get("CONVEYOR_SAVE_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
def broker_outage(settings):
    settings.INCIDENT_THRESHOLD = 5
    settings.INCIDENT_WINDOW_S = 300
    acme, globex = make_org("acme"), make_org("globex")
    user = member(acme, username="alice")
    billing, sync, ledger = (
        make_workflow(acme, name="billing"),
        make_workflow(acme, name="crm-sync"),
        make_workflow(globex),
    )
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=16)
    pattern = [(0, Code.MS0001, billing), (1, Code.MS0001, sync), (1, Code.MS0001, ledger), (2, Code.MS0001, billing)]
    pattern += [(m, Code.MS0001, (billing, sync, ledger)[m % 3]) for m in range(2, 9) for _ in range(1 + m % 3)]
    pattern += [(m, Code.P0005, (billing, ledger)[m % 2]) for m in range(7, 12) for _ in range(2)]
    pattern += [(m, Code.P0003, sync) for m in (9, 10, 12)]
    runs = [
        system_error_at(wf, start + timedelta(minutes=m, seconds=7 * i % 50), code)
        for i, (m, code, wf) in enumerate(pattern)
    ]
    detect_at(start + timedelta(minutes=3))
    detect_at(start + timedelta(minutes=13))
    incident = Incident.objects.get()
    services.annotate(
        incident,
        "SQS endpoint refusing connections in us-east-1; AWS health shows elevated errors.",
        author="operator:ann",
    )
    services.annotate(incident, "Endpoint answers again; watching the backlog drain.", author="operator:ann")
    return incident, user, runs[0]


def test_the_incident_page_renders_and_is_captured(broker_outage, out_dir):
    from django.contrib.auth import get_user_model

    incident, customer, run = broker_outage
    get_user_model().objects.create_superuser(username="operator", password="pw-for-tests-only", email="")
    with live_server() as url, browser_page(width=1400, height=1000) as page:
        page.goto(f"{url}/admin/login/?next=/admin/incidents/incident/{incident.pk}/change/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "pw-for-tests-only")
        page.click("input[type=submit]")
        page.wait_for_selector("#incident-chart")
        assert page.locator("#incident-chart rect.bar").count() > 10
        assert page.locator("#incident-chart").bounding_box()["width"] > 800
        assert page.locator(".incident-timeline li").count() >= 4
        assert page.locator("#incident-runs-link").is_visible()
        assert page.locator("#incident-safe-count").inner_text() != "0"
        page.screenshot(path=str(out_dir / "incident-page.png"), full_page=True)

        page.goto(f"{url}/admin/incidents/incident/")
        assert page.locator("#result_list .cv-badge").count() == 1

        page.context.clear_cookies()
        log_in(page, url, customer.username)
        page.goto(f"{url}/runs/{run.pk}/")
        notice = page.locator("#run-incident").inner_text()
        assert "part of a platform incident that started at" in notice and "ongoing" in notice

    assert (out_dir / "incident-page.png").stat().st_size > 20_000
