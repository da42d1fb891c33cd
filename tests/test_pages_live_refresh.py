"""In headless Chromium: the page of a run in progress refreshes itself, shows the run's
terminal status as soon as it is written, and then stops refreshing."""

import time

import pytest
from django.test import override_settings
from django.utils import timezone

from executions.models import Step
from executions.transitions import fail, transition
from failures.classifier import system_fault
from failures.statuses import Actor
from tests.factories import make_execution, make_org, make_workflow
from tests.ui import browser_page, live_server, log_in, member

pytestmark = [pytest.mark.django_db(transaction=True)]
REFRESH_MS = 200


@pytest.fixture
def server():
    with override_settings(CONVEYOR_RUN_REFRESH_MS=REFRESH_MS), live_server() as url:
        yield url


def status_requests(page, run) -> list[float]:
    seen: list[float] = []
    page.on("request", lambda r: seen.append(time.monotonic()) if f"/runs/{run.pk}/status/" in r.url else None)
    return seen


def test_a_running_run_turns_terminal_on_screen_and_the_refreshing_stops(server):
    org = make_org("acme")
    user = member(org, username="alice")
    run = make_execution(make_workflow(org), status="running", started_at=timezone.now())
    with browser_page() as page:
        log_in(page, server, user.username)
        polls = status_requests(page, run)
        page.goto(f"{server}/runs/{run.pk}/")
        assert page.get_attribute("#run", "data-refreshing") == "true"
        page.wait_for_function("n => window.performance.getEntriesByType('resource').length >= n", arg=2)
        Step.objects.create(execution=run, step_id="charge", action="transform", position=0, status="running")
        page.locator('tr.cv-step[data-step-id="charge"]').wait_for()  # steps refresh too

        transition(run.pk, "success", actor=Actor.RUNTIME, expected=["running"])

        page.wait_for_selector('#run[data-refreshing="false"]')
        assert page.get_attribute("#run", "data-status") == "success"
        assert page.locator("#run-status .cv-badge").inner_text().strip().endswith("Success")
        assert page.locator("#run-actions button").inner_text() == "Re-run"  # cancel gave way to re-run
        stopped_at = len(polls)
        page.wait_for_timeout(REFRESH_MS * 6)
        assert len(polls) == stopped_at and stopped_at >= 2


def test_a_system_error_shows_its_customer_message_never_the_steps_internal_text(server):
    org = make_org("acme")
    user = member(org, username="bob")
    run = make_execution(make_workflow(org), status="running")
    internal = "psycopg.OperationalError: server db-7.internal closed the connection"
    Step.objects.create(
        execution=run, step_id="load", action="transform", position=0, status="error",
        error_type="system", error_message=internal, finished_at=timezone.now(),
    )  # fmt: skip
    with browser_page() as page:
        log_in(page, server, user.username)
        page.goto(f"{server}/runs/{run.pk}/")
        fail(run.pk, system_fault("C-0002", internal), actor=Actor.RUNTIME, expected=["running"])
        page.wait_for_selector('#run[data-refreshing="false"]')

        assert page.get_attribute("#run", "data-status") == "system_error"
        body = page.inner_text("body")
        assert "database was unavailable" in body and "(reference C-0002)" in body
        assert "nothing to fix in your workflow" in body and "may have partly run" in body
        assert "db-7.internal" not in page.content() and "psycopg" not in page.content()


def test_a_finished_run_never_starts_refreshing(server):
    org = make_org("acme")
    user = member(org, username="carol")
    run = make_execution(make_workflow(org), status="cancelled")
    with browser_page() as page:
        log_in(page, server, user.username)
        polls = status_requests(page, run)
        page.goto(f"{server}/runs/{run.pk}/")
        page.wait_for_timeout(REFRESH_MS * 4)
        assert page.get_attribute("#run", "data-refreshing") == "false" and polls == []
