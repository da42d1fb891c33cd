"""Recovery from an incident re-runs only the runs that did no work (no step ever
started), each once, at most the bulk re-run's limit per confirmation, and says what is
left; the runs that may have partly run are resumed from the step that did not succeed
(executions.resume), each once, except one whose interrupted step may repeat and is not
idempotent: it is listed for its own confirmation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executions.models import Execution, Step
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


@pytest.fixture
def published(monkeypatch):
    """The queue is the e2e tests' (tests/test_incident_opens_after_an_sqs_outage.py): here
    the producer's send is recorded instead."""
    sent: list = []
    monkeypatch.setattr("executions.enqueue.publish", lambda run_id, key: sent.append((run_id, key)))
    return sent


def test_the_runs_that_may_have_partly_run_are_resumed_once_from_their_step(
    incident, published, django_capture_on_commit_callbacks
):
    found, safe, partly = incident

    with django_capture_on_commit_callbacks(execute=True):  # the send follows the commit
        result = recovery.resume_others(found, actor="operator:ann")

    assert sorted(original for original, _ in result.rerun) == sorted(r.pk for r in partly)
    assert not result.refused and result.remaining == 0
    resumes = Execution.objects.filter(rerun_of__in=[r.pk for r in partly])
    assert {r.trigger_type for r in resumes} == {"resume"}
    assert len(published) == 2
    assert not Execution.objects.filter(rerun_of__in=[r.pk for r in safe]).exists()  # re-run, never resumed
    assert IncidentNote.objects.filter(incident=found, kind=NoteKind.RECOVERY, text__startswith="resumed 2").exists()

    again = recovery.resume_others(found, actor="operator:ann")
    assert again.rerun == [] and resumes.count() == 2


def test_a_run_whose_interrupted_post_may_repeat_is_listed_not_resumed(
    settings, published, django_capture_on_commit_callbacks
):
    settings.INCIDENT_THRESHOLD = 2
    settings.INCIDENT_WINDOW_S = 300
    post = {
        "steps": [
            {"id": "pay", "action": "http_request", "config": {"method": "POST", "url": "https://example.com/pay"}}
        ]
    }
    wf = make_workflow(definition=post)
    runs = errors_every(wf, T0, 2, 10, Code.P0003)
    for run in runs:
        Step.objects.create(
            execution=run, step_id="pay", action="http_request", position=0, status="running", started_at=T0
        )
    detect_at(T0 + timedelta(minutes=2))

    with django_capture_on_commit_callbacks(execute=True):
        result = recovery.resume_others(Incident.objects.get(), actor="operator:ann")

    assert result.rerun == [] and len(result.refused) == 2
    assert all("'pay'" in reason for _, reason in result.refused)
    assert published == [] and result.remaining == 2
