"""The organization's workflow pages: runs per status over the last 24 hours, and each
workflow's recent runs with a status label, icon and coloured dot."""

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.presentation import LOOKS
from tests.factories import make_execution, make_workflow
from tests.ui import member

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def billing(client):
    user = member()
    client.force_login(user)
    workflow = make_workflow(user.membership.organization, name="billing")
    for status in ("success", "success", "error", "running"):
        make_execution(workflow, status=status)
    make_execution(workflow, status="system_error", error_type="system", error_code="P-0001")
    make_execution(workflow, status="success", created_at=timezone.now() - timedelta(hours=30))
    return workflow


def test_the_workflows_page_counts_runs_per_status_over_the_last_24_hours(client, billing):
    response = client.get("/workflows/")
    (row,) = response.context["rows"]
    assert dict(row["counts"]) == {
        "pending": 0, "running": 1, "success": 2, "error": 1, "system_error": 1, "cancelled": 0, "skipped": 0,
    }  # fmt: skip
    assert "\u26a0 System Error" in response.content.decode()


def test_a_workflows_page_lists_recent_runs_with_label_icon_and_dot(client, billing):
    response = client.get(f"/workflows/{billing.pk}/")
    html = response.content.decode()

    assert len(response.context["recent"]) == 6
    assert {c.status: c.count for c in response.context["counts"]}["success"] == 2
    assert 'class="cv-dot" data-status="system_error" title="System Error"' in html
    assert f"background:{LOOKS['system_error'].colour}" in html and "<code>P-0001</code>" in html
    assert "\u2713 Success" in html and "\u25b6 Running" in html and "\u2715 Error" in html
