"""Every endpoint is scoped to the caller's organization: two organizations each see only
their own workflows and runs, another's answers 404; no token is a 401 and a user in no
organization a 403."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from executions.models import Execution
from tests.factories import NOOP_DEFINITION, make_execution, make_org, make_workflow
from tests.ui import api_client, member

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def two_orgs():
    cache.clear()
    acme, globex = make_org("acme"), make_org("globex")
    return {
        org.slug: {
            "api": api_client(member(org)),
            "workflow": (wf := make_workflow(org, name=f"{org.slug}-wf")),
            "finished": make_execution(wf, status="system_error", error_type="system", error_code="P-0001"),
            "pending": make_execution(wf, status="pending"),
        }
        for org in (acme, globex)
    }


def endpoints(target: dict) -> list[tuple[str, str]]:
    wf, finished, pending = target["workflow"].pk, target["finished"].pk, target["pending"].pk
    return [
        ("get", f"/api/workflows/{wf}/"),
        ("patch", f"/api/workflows/{wf}/"),
        ("put", f"/api/workflows/{wf}/"),
        ("delete", f"/api/workflows/{wf}/"),
        ("post", f"/api/workflows/{wf}/runs/"),
        ("get", f"/api/runs/{finished}/"),
        ("post", f"/api/runs/{finished}/rerun/"),
        ("post", f"/api/runs/{pending}/cancel/"),
        ("get", f"/api/runs/{pending}/wait/?timeout=0"),
    ]


def test_each_organization_lists_only_its_own(two_orgs):
    for slug, mine in two_orgs.items():
        workflows = mine["api"].get("/api/workflows/").json()["results"]
        runs = mine["api"].get("/api/runs/").json()["results"]
        assert [w["name"] for w in workflows] == [f"{slug}-wf"]
        assert {r["id"] for r in runs} == {str(mine["finished"].pk), str(mine["pending"].pk)}


def test_every_endpoint_answers_404_for_the_other_organizations_objects(two_orgs):
    acme_api, globex = two_orgs["acme"]["api"], two_orgs["globex"]
    runs_before = Execution.objects.count()
    for method, url in endpoints(globex):
        response = getattr(acme_api, method)(url, {"name": "x", "definition": NOOP_DEFINITION}, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
    assert Execution.objects.count() == runs_before
    globex["pending"].refresh_from_db()
    globex["workflow"].refresh_from_db()
    assert globex["pending"].status == "pending" and globex["workflow"].deleted_at is None


def test_every_endpoint_needs_a_token(two_orgs):
    anonymous = APIClient()
    for method, url in [*endpoints(two_orgs["acme"]), ("get", "/api/workflows/"), ("get", "/api/runs/")]:
        assert getattr(anonymous, method)(url).status_code == 401, (method, url)


def test_a_user_in_no_organization_is_refused(two_orgs):
    loner = get_user_model().objects.create_user(username="loner", password="pw-for-tests-only")
    assert api_client(loner).get("/api/runs/").status_code == 403
    assert api_client(loner).get(f"/api/runs/{two_orgs['acme']['finished'].pk}/").status_code == 403
