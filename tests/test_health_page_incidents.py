"""The health page's open-incidents panel goes through one adapter: while the incidents
app is not installed the panel says "incidents not available"; once it is, the page lists
what ``incidents.queries.open_incidents`` returns."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from django.apps import apps

from observability import health
from tests.ui import staff_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queues(settings):
    settings.METRICS_QUEUES = []


@dataclass
class FakeIncident:
    pk: int
    title: str
    started_at: datetime

    def __str__(self) -> str:
        return self.title


def test_without_the_incidents_app_the_panel_says_incidents_are_not_available():
    assert not apps.is_installed("incidents")
    assert health.open_incidents() is None
    client, _ = staff_client()

    page = client.get("/admin/health/").content.decode()

    panel = page[page.index('id="cv-incidents"') : page.index('id="cv-reaper"')]
    assert "incidents not available" in panel


def test_with_the_incidents_app_the_panel_lists_its_open_incidents(monkeypatch):
    asked = []

    def open_incidents(limit: int = 20):
        asked.append(limit)
        return [FakeIncident(7, "Broker outage: infrastructure (P-0005)", datetime(2030, 1, 10, 11, 40, tzinfo=UTC))]

    package, queries = types.ModuleType("incidents"), types.ModuleType("incidents.queries")
    queries.open_incidents = open_incidents
    monkeypatch.setitem(sys.modules, "incidents", package)
    monkeypatch.setitem(sys.modules, "incidents.queries", queries)
    real = apps.is_installed
    monkeypatch.setattr(apps, "is_installed", lambda name: name == "incidents" or real(name))
    client, _ = staff_client()

    page = client.get("/admin/health/").content.decode()

    panel = page[page.index('id="cv-incidents"') : page.index('id="cv-reaper"')]
    assert "Broker outage: infrastructure (P-0005)" in panel
    assert "since 2030-01-10 11:40 UTC" in panel
    assert "not available" not in panel
    assert asked == [health.INCIDENTS_LISTED]
