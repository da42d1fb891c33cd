"""The admin's runs list: a coloured badge per run (System Error amber with its code,
distinct from Error red), filters built from choices for every status, type, category,
code, trigger, workflow, organization and "stuck", search by run id and workflow name,
and never a full count of the table."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from executions.admin import EstimatedCountPaginator
from executions.presentation import LOOKS
from failures.catalogue import CODE_CHOICES
from failures.statuses import ExecutionStatus
from tests.factories import make_execution, make_org, make_workflow
from tests.ui import member, staff_client

pytestmark = [pytest.mark.django_db]
LIST = "/admin/executions/execution/"


@pytest.fixture
def operator():
    return staff_client()[0]


@pytest.fixture
def runs(settings):
    acme = make_org("acme")
    billing, reports = make_workflow(acme, name="billing"), make_workflow(make_org("globex"), name="reports")
    now = timezone.now()
    old = now - timedelta(seconds=settings.START_THRESHOLD_S + 60)
    stale = now - timedelta(seconds=settings.STALE_AFTER_S + 30)
    return {
        "success": make_execution(billing, status="success"),
        "user": make_execution(billing, status="error", error_type="user", error_category="workflow"),
        "external": make_execution(
            reports, status="error", error_type="external", error_category="external_service", trigger_type="schedule"
        ),
        "system": make_execution(
            reports, status="system_error", error_type="system", error_category="database", error_code="C-0002"
        ),
        "lost": make_execution(
            billing, status="system_error", error_type="system", error_category="infrastructure", error_code="P-0005"
        ),
        "stuck_pending": make_execution(billing, status="pending", queued_at=old),
        "fresh_pending": make_execution(billing, status="pending"),
        "stuck_running": make_execution(reports, status="running", heartbeat_at=stale),
        "fresh_running": make_execution(reports, status="running", heartbeat_at=now),
    }


def listed(response) -> set:
    assert response.status_code == 200, response.status_code
    return {run.pk for run in response.context["cl"].result_list}


def test_only_staff_reach_the_runs_list(client):
    assert client.get(LIST).status_code == 302
    client.force_login(member())
    response = client.get(LIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_system_error_is_an_amber_badge_with_its_code_and_error_a_red_one(operator, runs):
    html = operator.get(LIST).content.decode()

    assert LOOKS["system_error"].colour == "#d97706" and LOOKS["error"].colour == "#dc2626"
    amber = (
        'data-status="system_error" style="display:inline-block;padding:1px 8px;border-radius:9px;background:#d97706'
    )
    assert amber in html and "background:#dc2626" in html and "System Error" in html
    assert '<code class="cv-code"' in html and ">C-0002</code>" in html and ">P-0005</code>" in html
    assert len({look.colour for status, look in LOOKS.items() if status not in ("cancelled", "skipped")}) == 5


def test_the_filters_offer_every_status_and_every_catalogue_code(operator, runs):
    changelist = operator.get(LIST).context["cl"]
    specs = {spec.title: spec for spec in changelist.filter_specs}

    def offered(title: str) -> list[str]:
        return [choice["display"] for choice in specs[title].choices(changelist)][1:]  # after "All"

    assert offered("status") == [label for _, label in ExecutionStatus.choices]
    assert "System Error" in offered("status")
    assert offered("error code") == [label for _, label in CODE_CHOICES]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=system_error", {"system", "lost"}),
        ("status__exact=error", {"user", "external"}),
        ("error_type=system", {"system", "lost"}),
        ("error_type=external", {"external"}),
        ("error_category=database", {"system"}),
        ("error_category=workflow", {"user"}),
        ("error_code__exact=P-0005", {"lost"}),
        ("trigger_type__exact=schedule", {"external"}),
        ("organization=acme", {"success", "user", "lost", "stuck_pending", "fresh_pending"}),
        ("stuck=yes", {"stuck_pending", "stuck_running"}),
    ],
)
def test_each_filter_selects_exactly_its_runs(operator, runs, query, expected):
    assert listed(operator.get(f"{LIST}?{query}")) == {runs[name].pk for name in expected}


def test_the_workflow_filter_takes_an_id_instead_of_listing_every_workflow(operator, runs):
    billing = runs["success"].workflow
    response = operator.get(f"{LIST}?workflow={billing.pk}&status__exact=pending")
    assert listed(response) == {runs["stuck_pending"].pk, runs["fresh_pending"].pk}
    assert "billing (acme)" in response.content.decode()


def test_search_finds_a_run_by_its_exact_id_and_runs_by_workflow_name(operator, runs):
    assert listed(operator.get(LIST, {"q": str(runs["system"].pk)})) == {runs["system"].pk}
    assert listed(operator.get(LIST, {"q": "reports"})) == {
        runs[n].pk for n in ("external", "system", "stuck_running", "fresh_running")
    }


def test_the_list_never_counts_the_whole_table(operator, runs):
    with CaptureQueriesContext(connection) as queries:
        operator.get(LIST)
        operator.get(f"{LIST}?status__exact=system_error")
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts


def test_beyond_the_exact_limit_the_count_is_the_planners_estimate(operator, runs, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 3)
    response = operator.get(LIST)
    assert response.context["cl"].paginator.estimated
    assert "about" in response.content.decode()
