"""The failure digest's numbers on a fixture with every status: totals, a success rate
counted over both error statuses (a system error lowers it), system errors counted and
listed apart from the workflows' own errors, top failing workflows with their last
customer-facing error."""

from datetime import UTC, datetime, timedelta

import pytest

from failures.statuses import TERMINAL
from observability.digest import build_digest, period_bounds, render_text
from tests.factories import make_execution, make_org, make_workflow

pytestmark = pytest.mark.django_db

UNTIL = datetime(2030, 1, 10, 6, 0, tzinfo=UTC)  # a Thursday: the daily period is the 9th
DAY = datetime(2030, 1, 9, tzinfo=UTC)
INTERNAL = "worker host-7 pid 4242 killed: SIGKILL from the OOM killer"


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def run(workflow, status, finished_at, error_type="", code="", category="", message=""):
    return make_execution(
        workflow,
        status=status,
        error_type=error_type,
        error_code=code,
        error_category=category,
        error_message=message,
        finished_at=finished_at,
    )


@pytest.fixture
def org():
    org = make_org("acme")
    billing, sync, reports = (make_workflow(org, name=name) for name in ("billing", "sync", "reports"))
    for hour in (1, 2, 3):
        run(billing, "success", at(hour))
    run(billing, "error", at(10), "user", category="workflow", message="card declined for order 17")
    run(billing, "system_error", at(12), "system", "P-0003", "infrastructure", INTERNAL)
    run(billing, "system_error", at(20), "system", "P-0003", "infrastructure", INTERNAL)
    run(sync, "success", at(4))
    run(sync, "success", at(5))
    run(sync, "error", at(21), "external", category="external_service", message="api.partner.example answered 503")
    run(sync, "system_error", at(8), "system", "C-0002", "database", "connection to server at 10.0.0.5 failed")
    run(reports, "cancelled", at(6))
    run(reports, "skipped", at(7))
    run(reports, "success", at(9))
    # Not in the period, not finished, or another organization's.
    run(billing, "system_error", DAY - timedelta(minutes=1), "system", "P-0005", "infrastructure")
    run(billing, "success", DAY + timedelta(days=1))
    make_execution(billing, status="pending")
    make_execution(billing, status="running")
    run(make_workflow(make_org("other"), name="theirs"), "system_error", at(11), "system", "C-0001", "workflow_engine")
    return org


def test_totals_count_every_terminal_status_finished_in_the_period(org):
    digest = build_digest(org, "daily", UNTIL)

    assert (digest.start, digest.end) == ("2030-01-09 00:00 UTC", "2030-01-10 00:00 UTC")
    assert digest.totals == {"success": 6, "error": 2, "system_error": 3, "cancelled": 1, "skipped": 1}
    assert set(digest.totals) == set(TERMINAL)
    assert digest.runs_finished == 13


def test_the_success_rate_counts_both_error_statuses(org):
    digest = build_digest(org, "daily", UNTIL)

    assert digest.counted_for_success_rate == 11  # success + error + system_error
    assert digest.success_rate == pytest.approx(6 / 11)


def test_a_system_error_lowers_the_success_rate(org):
    before = build_digest(org, "daily", UNTIL).success_rate
    run(org.workflows.get(name="reports"), "system_error", at(22), "system", "E-0001", "workflow_engine")

    after = build_digest(org, "daily", UNTIL).success_rate

    assert after == pytest.approx(6 / 12)
    assert after < before


def test_system_errors_are_counted_and_listed_apart_from_workflow_errors(org):
    digest = build_digest(org, "daily", UNTIL)

    assert digest.system_errors == 3
    assert digest.workflow_errors == 2
    assert digest.workflow_errors_by_type == {"user": 1, "external": 1}
    assert [(c.code, c.category, c.count) for c in digest.system_errors_by_code] == [
        ("P-0003", "infrastructure", 2),
        ("C-0002", "database", 1),
    ]
    assert {e.error_code for e in digest.recent_system_errors} == {"P-0003", "C-0002"}
    assert len(digest.recent_system_errors) == 3
    assert {e.status for e in digest.recent_workflow_errors} == {"error"}
    assert [e.message for e in digest.recent_workflow_errors] == [
        "api.partner.example answered 503",
        "card declined for order 17",
    ]


def test_top_failing_workflows_carry_their_last_customer_facing_error(org):
    digest = build_digest(org, "daily", UNTIL)

    billing, sync = digest.top_workflows
    assert (billing.workflow, billing.failed, billing.workflow_errors, billing.system_errors) == ("billing", 3, 1, 2)
    assert billing.last_error_code == "P-0003"
    assert billing.last_error.endswith("(reference P-0003)")
    assert (sync.workflow, sync.failed, sync.last_error) == ("sync", 2, "api.partner.example answered 503")


def test_the_text_shows_system_errors_in_their_own_section_and_never_an_internal_message(org):
    text = render_text(build_digest(org, "daily", UNTIL))

    system_section, workflow_section = text.split("Workflow errors (")
    assert "System errors (platform failures, not your workflows' fault): 3" in system_section
    assert "P-0003 (infrastructure) x2" in system_section
    assert "card declined" not in system_section
    assert "card declined for order 17" in workflow_section
    assert "Success rate: 54.5% (6 of 11" in text
    assert INTERNAL not in text
    assert "10.0.0.5" not in text


def test_periods_are_the_last_complete_utc_day_or_monday_week():
    assert period_bounds("daily", UNTIL) == (DAY, DAY + timedelta(days=1))
    assert period_bounds("weekly", UNTIL) == (datetime(2029, 12, 31, tzinfo=UTC), datetime(2030, 1, 7, tzinfo=UTC))
    with pytest.raises(ValueError, match="allowed: daily, weekly"):
        period_bounds("hourly", UNTIL)
