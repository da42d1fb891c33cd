"""GET /api/runs/: the organization's runs, newest first, filtered by status (any status,
system_error included, several at once), workflow, trigger and code; an unknown status is
a 400 naming the allowed values; pages through a cursor."""

from datetime import timedelta

import pytest
from django.utils import timezone

from failures.statuses import ALL_STATUSES
from tests.factories import make_execution, make_workflow
from tests.ui import api_client, member

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def world():
    user = member()
    org = user.membership.organization
    first, second = make_workflow(org, name="first"), make_workflow(org, name="second")
    now = timezone.now()
    runs = {}
    for i, status in enumerate(ALL_STATUSES):
        runs[status] = make_execution(first, status=status, created_at=now - timedelta(minutes=i))
    runs["second"] = make_execution(
        second, status="system_error", error_type="system", error_code="P-0005", created_at=now - timedelta(hours=1)
    )
    make_execution(make_workflow(name="elsewhere"), status="system_error")  # another organization's
    return api_client(user), first, second, runs


def ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {run["id"] for run in response.json()["results"]}


def test_every_status_is_a_valid_filter_system_error_included(world):
    api, first, _, runs = world
    for status in ALL_STATUSES:
        expected = {str(r.pk) for r in runs.values() if r.status == status}
        assert ids(api.get("/api/runs/", {"status": status})) == expected, status


def test_several_statuses_at_once_comma_separated_or_repeated(world):
    api, _, _, runs = world
    both = {str(runs["error"].pk), str(runs["system_error"].pk), str(runs["second"].pk)}
    assert ids(api.get("/api/runs/?status=error,system_error")) == both
    assert ids(api.get("/api/runs/?status=error&status=system_error")) == both


def test_an_unknown_status_is_a_400_naming_the_allowed_values(world):
    api, *_ = world
    response = api.get("/api/runs/?status=error,failed")

    assert response.status_code == 400
    message = response.json()["status"][0]
    assert "failed" in message and all(status in message for status in ALL_STATUSES)


def test_filters_by_workflow_trigger_and_code(world):
    api, first, second, runs = world
    assert ids(api.get("/api/runs/", {"workflow": second.pk})) == {str(runs["second"].pk)}
    assert ids(api.get("/api/runs/", {"error_code": "P-0005"})) == {str(runs["second"].pk)}
    assert len(ids(api.get("/api/runs/", {"trigger_type": "manual"}))) == len(ALL_STATUSES) + 1
    assert ids(api.get("/api/runs/", {"trigger_type": "schedule"})) == set()


@pytest.mark.parametrize(
    "query", ["workflow=abc", "trigger_type=carrier-pigeon", "error_code=X-9999", "created_after=yesterday"]
)
def test_a_malformed_filter_is_a_400_never_ignored(world, query):
    api, *_ = world
    assert api.get(f"/api/runs/?{query}").status_code == 400


def test_the_list_never_shows_another_organizations_runs(world):
    api, _, _, runs = world
    assert ids(api.get("/api/runs/")) == {str(r.pk) for r in runs.values()}


def test_the_cursor_pages_through_every_run_once_newest_first(world):
    api, _, _, runs = world
    seen, url = [], "/api/runs/?page_size=3"
    while url:
        page = api.get(url).json()
        seen += [run["id"] for run in page["results"]]
        url = page["next"]
    newest_first = sorted(runs.values(), key=lambda r: r.created_at, reverse=True)
    assert seen == [str(r.pk) for r in newest_first]
