"""The admin's incidents: a list with badges and no full count; an incident page with the
SVG chart of system errors per minute by code, the affected runs (a link to the runs list
filtered by the incident), the timeline and the operator's actions (open, annotate,
resolve, merge) and the recovery confirmation with the bulk re-run's counts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine

from executions.models import Execution
from failures.catalogue import Code
from incidents.models import Incident, IncidentNote, IncidentStatus, NoteKind, OpenedBy
from tests.clock import utc
from tests.factories import make_org, make_workflow
from tests.incident_runs import detect_at, errors_every
from tests.ui import staff_client

pytestmark = pytest.mark.django_db

T0 = utc(2026, 3, 2, 10, 0)
LIST = "/admin/incidents/incident/"


@pytest.fixture
def outage(settings):
    settings.INCIDENT_THRESHOLD = 5
    settings.INCIDENT_WINDOW_S = 300
    wf = make_workflow(make_org("acme"))
    safe = errors_every(wf, T0, 4, 20, Code.P0005) + errors_every(wf, T0 + timedelta(seconds=90), 2, 20, Code.MS0001)
    partly = errors_every(wf, T0 + timedelta(seconds=150), 3, 30, Code.P0003)
    make_workflow(make_org("unrelated"))
    detect_at(T0 + timedelta(minutes=5))
    return Incident.objects.get(), safe, partly


def test_the_list_shows_badges_counts_and_codes_without_a_full_count(outage):
    client, _ = staff_client()
    html = client.get(LIST).content.decode()

    assert 'data-status="open"' in html and "Open" in html
    assert "<code>MS-0001, P-0003, P-0005</code>" in html
    assert "infrastructure: system errors from 2026-03-02 10:00" in html  # the title
    assert re.search(r"\d+ total", html) is None  # show_full_result_count=False: no full COUNT


def test_the_incident_page_draws_errors_per_minute_by_code_and_links_to_its_runs(outage):
    incident, safe, partly = outage
    client, _ = staff_client()
    with time_machine.travel(T0 + timedelta(minutes=6), tick=False):
        html = client.get(f"{LIST}{incident.pk}/change/").content.decode()

    start = html.index('<svg xmlns="http://www.w3.org/2000/svg" id="incident-chart"')
    svg = html[start : html.index("</svg>", start)]
    bars = re.findall(r'<rect class="bar" data-code="([^"]+)" data-count="(\d+)"', svg)
    by_code: dict[str, int] = {}
    for code, count in bars:
        by_code[code] = by_code.get(code, 0) + int(count)
    assert by_code == {"P-0005": 4, "MS-0001": 2, "P-0003": 3}
    assert "9 in this span" in html
    assert f'href="/admin/executions/execution/?incident={incident.pk}"' in html
    assert 'id="incident-safe-count">6<' in html  # P-0005 and MS-0001 did no work
    assert 'id="incident-others-count">3</strong> other runs may have partly run' in html
    assert f'href="/admin/incidents/incident/{incident.pk}/resume/"' in html

    runs = client.get(f"/admin/executions/execution/?incident={incident.pk}").content.decode()
    shown = set(re.findall(r'<code title="([0-9a-f-]{36})">', runs))
    assert shown == {str(r.pk) for r in safe + partly}


def test_the_recovery_confirmation_counts_then_re_runs_only_the_safe_runs(outage):
    incident, safe, partly = outage
    client, _ = staff_client()

    page = client.get(f"{LIST}{incident.pk}/rerun/").content.decode()
    assert 'id="incident-rerun-count">6<' in page and "Re-run 6 runs" in page

    response = client.post(f"{LIST}{incident.pk}/rerun/", {"confirm": "yes"}, follow=True)

    assert "6 run(s) re-run." in response.content.decode()
    assert set(Execution.objects.filter(rerun_of__isnull=False).values_list("rerun_of_id", flat=True)) == {
        r.pk for r in safe
    }
    again = client.get(f"{LIST}{incident.pk}/rerun/").content.decode()
    assert 'id="incident-rerun-count">0<' in again


def test_the_resume_confirmation_counts_then_resumes_the_runs_that_may_have_partly_run(
    outage, monkeypatch, django_capture_on_commit_callbacks
):
    incident, safe, partly = outage
    sent: list = []
    monkeypatch.setattr("executions.enqueue.publish", lambda run_id, key: sent.append(run_id))
    client, _ = staff_client()

    page = client.get(f"{LIST}{incident.pk}/resume/").content.decode()
    assert 'id="incident-resume-count">3<' in page and "Resume 3 runs" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{LIST}{incident.pk}/resume/", {"confirm": "yes"})

    assert "3 run(s) resumed." in response.content.decode()
    resumed = Execution.objects.filter(trigger_type="resume")
    assert set(resumed.values_list("rerun_of_id", flat=True)) == {r.pk for r in partly}
    assert len(sent) == 3
    assert 'id="incident-resume-count">0<' in client.get(f"{LIST}{incident.pk}/resume/").content.decode()


def test_an_operator_opens_annotates_merges_and_resolves_through_the_admin(outage):
    detected, _, _ = outage
    client, _ = staff_client("ann")

    response = client.post(
        f"{LIST}add/",
        {
            "title": "DNS trouble",
            "start": "2026-03-02 09:55:00",
            "categories": ["network_rpc"],
            "note": "resolver flaps",
        },
    )
    by_hand = Incident.objects.get(opened_by=OpenedBy.OPERATOR)
    assert response.status_code == 302 and response["Location"].endswith(f"/{by_hand.pk}/change/")
    assert by_hand.categories == ["network_rpc"] and by_hand.notes.get().text == "resolver flaps"

    client.post(f"{LIST}{by_hand.pk}/annotate/", {"text": "same root cause as the broker"})
    assert IncidentNote.objects.filter(incident=by_hand, kind=NoteKind.NOTE, author="operator:ann").exists()

    client.post(f"{LIST}{by_hand.pk}/merge/", {"target": detected.pk})
    by_hand.refresh_from_db()
    detected.refresh_from_db()
    assert by_hand.merged_into_id == detected.pk and by_hand.status == IncidentStatus.RESOLVED
    assert "network_rpc" in detected.categories
    assert detected.start == utc(2026, 3, 2, 9, 55)

    client.post(f"{LIST}{detected.pk}/resolve/", {"note": "broker back"})
    detected.refresh_from_db()
    assert detected.status == IncidentStatus.RESOLVED
    page = client.get(f"{LIST}{detected.pk}/change/").content.decode()
    assert "broker back" in page and "Resolved" in page


def test_a_form_without_a_category_or_code_is_refused_and_opens_nothing(outage):
    client, _ = staff_client()
    response = client.post(f"{LIST}add/", {"title": "x", "start": "2026-03-02 09:55:00"})
    assert response.status_code == 200 and "name at least one category or code" in response.content.decode()
    assert not Incident.objects.filter(opened_by=OpenedBy.OPERATOR).exists()


def test_the_open_incidents_gauge_counts_open_ones(outage, client):
    from observability.scrape import value

    text = client.get("/metrics").content.decode()
    assert value(text, "conveyor_open_incidents") == 1
    assert value(text, "conveyor_metrics_collector_up", part="incidents") == 1
