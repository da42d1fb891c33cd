"""Incident recovery: the admin re-runs the finished runs that failed with one code in a
time window, after a confirmation page that shows how many; runs already re-run are left
out, so confirming twice never doubles a run."""

from datetime import timedelta

import pytest
from django.utils import timezone

from executions import services
from executions.models import Execution
from tests.factories import make_execution, make_workflow
from tests.ui import staff_client

pytestmark = [pytest.mark.django_db]
BULK = "/admin/executions/execution/bulk-rerun/"


@pytest.fixture
def incident():
    workflow = make_workflow()
    now = timezone.now()

    def lost(minutes_ago: int, code: str = "P-0003", **fields) -> Execution:
        return make_execution(
            workflow, status="system_error", error_type="system", error_code=code,
            created_at=now - timedelta(minutes=minutes_ago), **fields,
        )  # fmt: skip

    hit = [lost(10), lost(20), lost(30)]
    already = lost(15)
    make_execution(workflow, status="pending", rerun_of=already)  # already re-run
    others = [lost(25, code="P-0005"), lost(120), make_execution(workflow, status="running", error_code="P-0003")]
    window = {"code": "P-0003", "since": (now - timedelta(hours=1)).isoformat(), "until": now.isoformat()}
    return hit, already, others, window


def test_the_confirmation_page_shows_how_many_runs_match(incident):
    operator, _ = staff_client()
    hit, _, _, window = incident

    response = operator.get(BULK, window)

    assert response.status_code == 200 and response.context["count"] == len(hit)
    html = response.content.decode()
    assert '<strong id="bulk-rerun-count">3</strong>' in html and "Re-run 3 runs" in html
    assert not Execution.objects.filter(trigger_type="rerun").exists()  # nothing done before confirming


def test_confirming_re_runs_exactly_the_matching_runs_once(incident):
    operator, _ = staff_client()
    hit, already, others, window = incident

    response = operator.post(BULK, {**window, "confirm": "yes"})

    assert response.status_code == 302
    children = Execution.objects.filter(trigger_type="rerun")
    assert {child.rerun_of_id for child in children} == {run.pk for run in hit}
    assert all(child.status == "pending" for child in children)
    operator.post(BULK, {**window, "confirm": "yes"})  # a second confirmation
    assert Execution.objects.filter(trigger_type="rerun").count() == len(hit)
    assert operator.get(BULK, window).context["count"] == 0


def test_the_list_links_to_the_bulk_page_with_its_code(incident):
    operator, _ = staff_client()
    html = operator.get("/admin/executions/execution/?error_code__exact=P-0003&created=24h").content.decode()
    assert f'href="{BULK}?error_code__exact=P-0003&amp;created=24h"' in html
    form = operator.get(f"{BULK}?error_code__exact=P-0003&created=24h").context["form"]
    assert form.initial["code"] == "P-0003"
    assert timezone.now() - form.initial["since"] >= timedelta(hours=24)


def test_a_large_incident_is_recovered_a_batch_per_confirmation(incident, monkeypatch):
    operator, _ = staff_client()
    hit, _, _, window = incident
    monkeypatch.setattr(services, "BULK_RERUN_LIMIT", 2)

    operator.post(BULK, {**window, "confirm": "yes"})
    assert Execution.objects.filter(trigger_type="rerun").count() == 2
    operator.post(BULK, {**window, "confirm": "yes"})
    assert Execution.objects.filter(trigger_type="rerun").count() == 3


def test_only_operators_who_may_change_runs_can_bulk_re_run(incident, client):
    from django.contrib.auth import get_user_model

    viewer = get_user_model().objects.create_user(username="viewer", password="x", is_staff=True)
    client.force_login(viewer)
    assert client.post(BULK, {**incident[3], "confirm": "yes"}).status_code == 403
    assert not Execution.objects.filter(trigger_type="rerun").exists()
