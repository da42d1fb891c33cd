"""Recovery from an incident re-runs only the runs that did no work (no step ever
started), each once, at most the bulk re-run's limit per confirmation, and says what is
left; runs that may have partly run are left for the resume service."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executions.models import Execution
from failures.catalogue import Code
from incidents import recovery
from incidents.models import Incident, IncidentNote, NoteKind
from tests.clock import utc
from tests.factories import make_workflow
from tests.incident_runs import detect_at, errors_every

pytestmark = pytest.mark.django_db

T0 = utc(2026, 3, 2, 10, 0)


@pytest.fixture
def incident(settings):
    settings.INCIDENT_THRESHOLD = 5
    settings.INCIDENT_WINDOW_S = 300
    wf = make_workflow()
    safe = errors_every(wf, T0, 4, 10, Code.P0005)  # never received: did no work
    partly = errors_every(wf, T0 + timedelta(seconds=45), 2, 10, Code.P0003)  # worker lost mid-run
    detect_at(T0 + timedelta(minutes=2))
    return Incident.objects.get(), safe, partly


def test_only_the_runs_that_did_no_work_are_re_run_and_only_once(incident):
    found, safe, partly = incident
    assert found.runs_count == 6
    assert recovery.safe_to_rerun(found).count() == 4
    assert recovery.may_have_partly_run(found).count() == 2

    result = recovery.rerun_safe_runs(found, actor="operator:ann")

    assert sorted(original for original, _ in result.rerun) == sorted(r.pk for r in safe)
    assert result.remaining == 0 and not result.refused and not result.stopped_early
    children = Execution.objects.filter(rerun_of__in=[r.pk for r in safe])
    assert children.count() == 4
    assert not Execution.objects.filter(rerun_of__in=[r.pk for r in partly]).exists()
    assert IncidentNote.objects.filter(incident=found, kind=NoteKind.RECOVERY).count() == 1

    again = recovery.rerun_safe_runs(found, actor="operator:ann")
    assert again.rerun == [] and Execution.objects.filter(rerun_of__in=[r.pk for r in safe]).count() == 4


def test_a_confirmation_re_runs_at_most_the_limit_and_counts_the_rest(incident):
    found, safe, _ = incident

    result = recovery.rerun_safe_runs(found, actor="operator:ann", limit=3)

    assert len(result.rerun) == 3 and result.remaining == 1


def test_resuming_the_others_is_a_hook_for_the_resume_service(incident):
    with pytest.raises(NotImplementedError, match="resume"):
        recovery.resume_others(incident[0], actor="operator:ann")
