"""The health page lists the open platform incidents (incidents.queries.open_incidents),
each linked to its admin page, and says so when there is none; a resolved incident is not
listed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from incidents import services
from incidents.models import Incident
from tests.ui import staff_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queues(settings):
    settings.METRICS_QUEUES = []


def _panel(client) -> str:
    page = client.get("/admin/health/").content.decode()
    return page[page.index('id="cv-incidents"') : page.index('id="cv-reaper"')]


def test_with_no_open_incident_the_panel_says_so():
    client, _ = staff_client()
    assert "No open incident." in _panel(client)


def test_the_panel_lists_open_incidents_linked_to_their_page_and_not_resolved_ones():
    started = datetime(2030, 1, 10, 11, 40, tzinfo=UTC)
    ongoing = services.open_incident(
        title="Broker outage: infrastructure (P-0005)", start=started, opened_by="operator", author="ops"
    )
    over = services.open_incident(title="Database blip", start=started, opened_by="operator", author="ops")
    services.resolve(Incident.objects.get(pk=over.pk), author="ops")
    client, _ = staff_client()

    panel = _panel(client)

    assert "Broker outage: infrastructure (P-0005)" in panel
    assert f'href="/admin/incidents/incident/{ongoing.pk}/change/"' in panel
    assert "since 2030-01-10 11:40 UTC" in panel
    assert "Database blip" not in panel
    assert "No open incident." not in panel
