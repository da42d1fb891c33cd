"""Operators open, annotate, merge and resolve incidents through incidents.services: an
incident opened by hand gathers the errors it names and is never resolved by the quiet
period; a merge moves every run and the earlier start; the timeline is append-only."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from failures.catalogue import Code
from incidents import services
from incidents.models import Incident, IncidentNote, IncidentRun, IncidentStatus, NoteKind, OpenedBy
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


def open_by_hand(**kwargs) -> Incident:
    defaults = dict(title="database failover", start=T0, opened_by=OpenedBy.OPERATOR, author="operator:ann")
    with time_machine.travel(T0, tick=False):
        return services.open_incident(**{**defaults, **kwargs})


def test_an_incident_opened_by_hand_gathers_the_errors_it_names_and_stays_open_through_quiet():
    incident = open_by_hand(categories=["database"], note="primary lost")
    wf = make_workflow()
    db_error = system_error_at(wf, T0 + timedelta(minutes=1), Code.C0002)  # one: under any threshold
    system_error_at(wf, T0 + timedelta(minutes=1), Code.P0005)  # not its category

    detect_at(T0 + timedelta(minutes=5))
    detect_at(T0 + timedelta(hours=2))  # long quiet since

    incident.refresh_from_db()
    assert list(IncidentRun.objects.values_list("execution_id", flat=True)) == [db_error.pk]
    assert incident.status == IncidentStatus.OPEN  # an operator's incident is resolved by hand
    assert [n.kind for n in incident.notes.all()] == [NoteKind.OPENED, NoteKind.GATHERED]
    assert incident.notes.first().text == "primary lost"


def test_opening_needs_a_title():
    with pytest.raises(services.IncidentRefused):
        open_by_hand(title="  ", categories=["database"])


def test_annotate_appends_to_the_timeline_which_cannot_be_rewritten():
    incident = open_by_hand(categories=["database"])
    note = services.annotate(incident, "failover started", author="operator:ann")

    assert (note.kind, note.author, note.text) == (NoteKind.NOTE, "operator:ann", "failover started")
    with pytest.raises(RuntimeError):
        note.text = "something else"
        note.save()
    with pytest.raises(RuntimeError):
        note.delete()
    with pytest.raises(services.IncidentRefused):
        services.annotate(incident, " ", author="operator:ann")


def test_resolve_by_hand_ends_at_the_last_error_and_refuses_twice():
    wf = make_workflow()
    runs = errors_every(wf, T0, 5, 10)
    detect_at(T0 + timedelta(minutes=1))
    incident = Incident.objects.get()

    resolved = services.resolve(incident, author="operator:ann", note="broker restored")

    assert resolved.status == IncidentStatus.RESOLVED and resolved.end == runs[-1].finished_at
    assert IncidentNote.objects.filter(incident=incident, kind=NoteKind.RESOLVED, text="broker restored").exists()
    with pytest.raises(services.IncidentRefused):
        services.resolve(incident, author="operator:ann")


def test_merge_moves_runs_scope_and_the_earlier_start_and_resolves_the_source():
    a, b = make_workflow(make_org("a")), make_workflow(make_org("b"))
    errors_every(a, T0, 5, 10, Code.P0005)  # infrastructure
    errors_every(b, T0 + timedelta(minutes=2), 5, 10, Code.C0002)  # database
    detect_at(T0 + timedelta(minutes=3))
    infra, database = Incident.objects.order_by("start")

    target = services.merge(database, infra, author="operator:ann")

    database.refresh_from_db()
    assert target.pk == infra.pk
    assert (target.runs_count, target.organizations_count, target.start) == (10, 2, T0)
    assert target.categories == ["database", "infrastructure"] and target.codes == ["C-0002", "P-0005"]
    assert database.merged_into_id == infra.pk and database.status == IncidentStatus.RESOLVED
    assert database.runs_count == 0
    # Both categories now join the merged incident.
    later = system_error_at(b, T0 + timedelta(minutes=4), Code.C0002)
    detect_at(T0 + timedelta(minutes=5))
    assert IncidentRun.objects.get(execution=later).incident_id == infra.pk
    with pytest.raises(services.IncidentRefused):
        services.merge(database, infra, author="operator:ann")  # already merged
    with pytest.raises(services.IncidentRefused):
        services.merge(infra, infra, author="operator:ann")
