"""In headless Chromium: an organization user logs in, filters the runs by System Error,
sees the amber badge with its code, and hovering it explains honestly whose fault it was
and whether it is safe to re-run."""

import pytest

from tests.factories import make_execution, make_org, make_workflow
from tests.ui import browser_page, live_server, log_in, member

pytestmark = [pytest.mark.django_db(transaction=True)]
AMBER, RED = "rgb(217, 119, 6)", "rgb(220, 38, 38)"


@pytest.fixture
def server():
    with live_server() as url:
        yield url


@pytest.fixture
def acme_runs():
    org = make_org("acme")
    user = member(org, username="alice")
    workflow = make_workflow(org, name="billing")
    runs = {
        "lost": make_execution(workflow, status="system_error", error_type="system", error_code="P-0005"),
        "killed": make_execution(workflow, status="system_error", error_type="system", error_code="P-0003"),
        "user": make_execution(workflow, status="error", error_type="user", error_message="bad template"),
        "ok": make_execution(workflow, status="success"),
    }
    make_execution(make_workflow(name="not-acme"), status="system_error", error_type="system", error_code="C-0001")
    return user, runs


def test_filtering_by_system_error_shows_amber_badges_with_honest_tooltips(server, acme_runs):
    user, runs = acme_runs
    with browser_page() as page:
        log_in(page, server, user.username)
        assert page.locator("tr.cv-run").count() == 4  # acme's runs only

        page.select_option("#id_status", label="System Error")
        page.click("#run-filters button[type=submit]")
        page.wait_for_url("**/runs/?status=system_error*")

        rows = page.locator("tr.cv-run")
        assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.runId)")) == sorted(
            str(runs[name].pk) for name in ("lost", "killed")
        )
        badge = page.locator(f'tr[data-run-id="{runs["lost"].pk}"] .cv-badge')
        assert badge.inner_text().strip().endswith("System Error")
        assert badge.evaluate("b => getComputedStyle(b).backgroundColor") == AMBER
        assert page.locator(f'tr[data-run-id="{runs["lost"].pk}"] .cv-code').inner_text() == "P-0005"

        lost_tip = page.locator(f'tr[data-run-id="{runs["lost"].pk}"] [role=tooltip]')
        assert not lost_tip.is_visible()
        badge.hover()
        lost_tip.wait_for(state="visible")
        text = lost_tip.inner_text()
        assert "platform failed, not your workflow" in text and "nothing to fix in your workflow" in text
        assert "safe to re-run" in text and "may have partly run" not in text

        page.locator(f'tr[data-run-id="{runs["killed"].pk}"] .cv-badge').hover()
        killed_tip = page.locator(f'tr[data-run-id="{runs["killed"].pk}"] [role=tooltip]')
        killed_tip.wait_for(state="visible")
        assert "may have partly run" in killed_tip.inner_text() and "safe to re-run" not in killed_tip.inner_text()


def test_an_error_stays_red_and_distinct_from_a_system_error(server, acme_runs):
    user, runs = acme_runs
    with browser_page() as page:
        log_in(page, server, user.username)
        page.goto(f"{server}/runs/?status=error")
        badge = page.locator(f'tr[data-run-id="{runs["user"].pk}"] .cv-badge')
        assert badge.evaluate("b => getComputedStyle(b).backgroundColor") == RED
        assert page.locator(".cv-code").count() == 0
