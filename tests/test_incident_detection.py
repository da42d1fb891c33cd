"""The detector opens an incident when system errors of one category cross the threshold
within the window, backdated to the first of them; it gathers later ones, leaves other
categories and sparse errors alone, and resolves the incident after the quiet period."""

from __future__ import annotations

from datetime import timedelta

import pytest

from failures.catalogue import Code
from incidents.models import Incident, IncidentRun, IncidentStatus, OpenedBy
from tests.clock import utc
from tests.factories import make_org, make_workflow
from tests.incident_runs import detect_at, errors_every, system_error_at

pytestmark = pytest.mark.django_db

T0 = utc(2026, 3, 2, 10, 0)


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.INCIDENT_THRESHOLD = 5
    settings.INCIDENT_WINDOW_S = 300
    settings.INCIDENT_QUIET_S = 600
    settings.INCIDENT_GROUP_BY = "category"


def test_five_infrastructure_errors_within_five_minutes_open_one_incident_backdated_to_the_first():
    wf_a, wf_b = make_workflow(make_org("a")), make_workflow(make_org("b"))
    detect_at(T0 - timedelta(minutes=1))  # its last pass before the outage stopped the maintenance queue
    runs = errors_every(wf_a, T0, 3, 40) + errors_every(wf_b, T0 + timedelta(seconds=130), 2, 40, Code.MS0001)

    report = detect_at(T0 + timedelta(minutes=20))  # long after: the maintenance queue was down

    assert len(report.opened) == 1
    incident = Incident.objects.get()
    assert incident.start == T0  # the first error, not the detection time
    assert incident.opened_by == OpenedBy.AUTO
    assert incident.categories == ["infrastructure"]
    assert incident.codes == ["MS-0001", "P-0005"]
    assert set(IncidentRun.objects.values_list("execution_id", flat=True)) == {r.pk for r in runs}
    assert (incident.runs_count, incident.workflows_count, incident.organizations_count) == (5, 2, 2)


def test_errors_below_the_threshold_or_spread_wider_than_the_window_open_nothing():
    wf = make_workflow()
    errors_every(wf, T0, 4, 10)  # four: one short
    errors_every(wf, T0 + timedelta(hours=1), 5, 80)  # five, but over 320 s

    assert detect_at(T0 + timedelta(hours=2)).opened == []
    assert not Incident.objects.exists()


def test_categories_are_counted_apart():
    wf = make_workflow()
    errors_every(wf, T0, 3, 10, Code.P0005)  # infrastructure
    errors_every(wf, T0, 3, 10, Code.C0002)  # database

    assert detect_at(T0 + timedelta(minutes=2)).opened == []


def test_grouping_by_code_opens_one_incident_per_code(settings):
    settings.INCIDENT_GROUP_BY = "code"
    wf = make_workflow()
    errors_every(wf, T0, 5, 10, Code.P0005)
    errors_every(wf, T0, 3, 10, Code.MS0001)  # same category, too few of this code

    detect_at(T0 + timedelta(minutes=2))

    incident = Incident.objects.get()
    assert (incident.key_kind, incident.key, incident.runs_count) == ("code", "P-0005", 5)


def test_an_open_incident_gathers_later_errors_of_its_category_and_not_others():
    wf = make_workflow()
    errors_every(wf, T0, 5, 10)
    detect_at(T0 + timedelta(minutes=1))
    incident = Incident.objects.get()

    later = system_error_at(wf, T0 + timedelta(minutes=4), Code.P0001)
    other = system_error_at(wf, T0 + timedelta(minutes=4), Code.C0002)
    report = detect_at(T0 + timedelta(minutes=5))

    assert report.gathered == 1 and report.opened == []
    incident.refresh_from_db()
    assert incident.runs_count == 6 and incident.is_open
    assert IncidentRun.objects.filter(execution=later, incident=incident).exists()
    assert not IncidentRun.objects.filter(execution=other).exists()
    assert incident.last_error_at == later.finished_at


def test_the_incident_resolves_after_the_quiet_period_with_its_last_error_as_end():
    wf = make_workflow()
    runs = errors_every(wf, T0, 5, 10)
    detect_at(T0 + timedelta(minutes=1))
    last = runs[-1].finished_at

    assert detect_at(last + timedelta(seconds=599)).resolved == []
    assert Incident.objects.get().status == IncidentStatus.OPEN

    report = detect_at(last + timedelta(seconds=601))

    incident = Incident.objects.get()
    assert report.resolved == [incident.pk]
    assert incident.status == IncidentStatus.RESOLVED and incident.end == last
    assert incident.resolved_at == last + timedelta(seconds=601)


def test_a_new_burst_after_the_quiet_period_is_a_new_incident_even_when_seen_in_one_pass():
    wf = make_workflow()
    errors_every(wf, T0, 5, 10)
    errors_every(wf, T0 + timedelta(minutes=30), 5, 10)

    report = detect_at(T0 + timedelta(minutes=31))  # the detector was stopped all along

    assert len(report.opened) == 2
    first, second = Incident.objects.order_by("start")
    assert first.start == T0 and first.status == IncidentStatus.RESOLVED  # quiet since: resolved at once
    assert second.start == T0 + timedelta(minutes=30) and second.is_open
    assert first.runs_count == second.runs_count == 5


def test_a_pass_reads_only_since_its_watermark_and_never_links_a_run_twice():
    wf = make_workflow()
    errors_every(wf, T0, 5, 10)
    detect_at(T0 + timedelta(minutes=1))
    detect_at(T0 + timedelta(minutes=2))
    report = detect_at(T0 + timedelta(minutes=3))

    assert report.read == 0  # linked runs are not read again
    assert IncidentRun.objects.count() == 5 and Incident.objects.count() == 1


def test_a_second_detector_does_nothing_while_the_first_holds_the_lease():
    from reaper import lease

    assert lease.acquire("incidents", "someone-else", 300)
    wf = make_workflow()
    errors_every(wf, T0, 5, 10)

    report = detect_at(T0 + timedelta(minutes=1))

    assert not report.acquired and not Incident.objects.exists()
