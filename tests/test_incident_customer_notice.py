"""A run that belongs to a platform incident says so on its page and in the API: when the
incident started and was resolved (or that it is ongoing), and nothing internal (no title,
notes, codes beyond the run's own, other organizations). Another organization's run
answers 404, and a run outside any incident carries no notice."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from failures.catalogue import Code
from incidents import services
from incidents.models import Incident
from tests.clock import utc
from tests.factories import make_org, make_workflow
from tests.incident_runs import detect_at, errors_every, system_error_at
from tests.ui import api_client, member

pytestmark = pytest.mark.django_db

T0 = utc(2026, 3, 2, 10, 0)
SECRET_TITLE = "rabbit-7 broker on node db-7.internal lost quorum"
SECRET_NOTE = "paged Bob; root cause: expired TLS cert on 10.0.3.7"


@pytest.fixture
def incident(settings):
    settings.INCIDENT_THRESHOLD = 5
    settings.INCIDENT_WINDOW_S = 300
    settings.INCIDENT_QUIET_S = 600
    acme, other = make_org("acme"), make_org("other")
    runs = errors_every(make_workflow(acme), T0, 3, 10) + errors_every(
        make_workflow(other), T0 + timedelta(seconds=30), 2, 10
    )
    detect_at(T0 + timedelta(minutes=1))
    incident = Incident.objects.get()
    incident.title = SECRET_TITLE
    incident.save(update_fields=["title"])
    services.annotate(incident, SECRET_NOTE, author="operator:ann")
    return incident, acme, runs


def page(user, run) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_run_page_says_the_run_was_part_of_an_ongoing_incident(incident):
    _, acme, runs = incident
    html = page(member(acme), runs[0])

    assert 'id="run-incident"' in html
    assert "part of a platform incident that started at 2026-03-02 10:00 UTC and is ongoing" in html
    assert SECRET_TITLE not in html and SECRET_NOTE not in html


def test_once_resolved_the_page_and_the_api_give_both_times(incident):
    found, acme, runs = incident
    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        services.resolve(found, author="operator:ann", note=SECRET_NOTE)
    user = member(acme)

    html = page(user, runs[1])
    body = api_client(user).get(f"/api/runs/{runs[1].pk}/").json()

    sentence = "started at 2026-03-02 10:00 UTC and was resolved at 2026-03-02 10:00 UTC."
    assert sentence in html
    assert body["incident"]["ongoing"] is False
    assert body["incident"]["started_at"].startswith("2026-03-02T10:00:00")
    assert body["incident"]["resolved_at"].startswith("2026-03-02T10:00:40")  # its last error (another org's)
    assert sentence in body["incident"]["notice"]
    assert set(body["incident"]) == {"started_at", "resolved_at", "ongoing", "notice"}
    text = str(body)
    assert SECRET_TITLE not in text and SECRET_NOTE not in text and "operator:ann" not in text


def test_the_api_says_ongoing_and_the_list_carries_nothing_extra(incident):
    _, acme, runs = incident
    client = api_client(member(acme))

    body = client.get(f"/api/runs/{runs[0].pk}/").json()
    assert body["incident"]["ongoing"] is True and body["incident"]["resolved_at"] is None
    assert "is ongoing" in body["incident"]["notice"]


def test_another_organization_sees_nothing_of_the_incident_through_acmes_runs(incident):
    _, acme, runs = incident
    stranger = member(make_org("stranger"))

    assert api_client(stranger).get(f"/api/runs/{runs[0].pk}/").status_code == 404
    client = Client()
    client.force_login(stranger)
    assert client.get(f"/runs/{runs[0].pk}/").status_code == 404


def test_a_run_outside_any_incident_has_no_notice(incident):
    _, acme, _ = incident
    lone = system_error_at(make_workflow(acme, name="lone"), T0 + timedelta(hours=3), Code.C0002)
    user = member(acme)

    assert api_client(user).get(f"/api/runs/{lone.pk}/").json()["incident"] is None
    assert 'id="run-incident"' not in page(user, lone)
