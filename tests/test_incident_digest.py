"""The failure digest lists the platform incidents that touched the organization in its
period, apart from its own errors: when each started and ended and how many of the
organization's runs it affected; an organization the incident missed sees none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from failures.catalogue import Code
from observability.digest import build_digest, render_text
from tests.clock import utc
from tests.factories import make_org, make_workflow
from tests.incident_runs import detect_at, errors_every, system_error_at

pytestmark = pytest.mark.django_db

T0 = utc(2026, 3, 2, 10, 0)
NEXT_DAY = utc(2026, 3, 3, 1, 0)


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.INCIDENT_THRESHOLD = 5
    settings.INCIDENT_WINDOW_S = 300
    settings.INCIDENT_QUIET_S = 600


def test_the_digest_lists_the_incident_with_the_organizations_own_run_count():
    acme, other, spared = make_org("acme"), make_org("other"), make_org("spared")
    errors_every(make_workflow(acme), T0, 3, 10)
    errors_every(make_workflow(other), T0 + timedelta(seconds=30), 4, 10)
    system_error_at(make_workflow(spared), T0 + timedelta(hours=5), Code.C0002)  # its own error, no incident
    detect_at(T0 + timedelta(minutes=1))
    detect_at(T0 + timedelta(hours=1))  # quiet: resolved

    digest = build_digest(acme, "daily", until=NEXT_DAY)
    text = render_text(digest)

    assert [(i.started_at, i.resolved_at, i.runs) for i in digest.incidents] == [
        ("2026-03-02 10:00 UTC", "2026-03-02 10:01 UTC", 3)
    ]
    assert "Platform incidents that affected your runs" in text
    assert "started 2026-03-02 10:00 UTC, resolved 2026-03-02 10:01 UTC: 3 of your runs" in text
    assert digest.system_errors == 3  # its own errors are still counted apart

    spared_digest = build_digest(spared, "daily", until=NEXT_DAY)
    assert spared_digest.incidents == [] and "Platform incidents" not in render_text(spared_digest)


def test_an_ongoing_incident_says_so_and_an_earlier_period_does_not_list_it():
    acme = make_org("acme")
    errors_every(make_workflow(acme), T0, 5, 10)
    detect_at(T0 + timedelta(minutes=1))

    assert "ongoing: 5 of your runs" in render_text(build_digest(acme, "daily", until=NEXT_DAY))
    assert build_digest(acme, "daily", until=T0 - timedelta(days=1)).incidents == []
