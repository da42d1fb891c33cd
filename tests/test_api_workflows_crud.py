"""Workflows through the API: create, list, read, change and (soft) delete, scoped to the
caller's organization, with the definition's validation errors per field."""

import pytest
from django.utils import timezone

from tests.factories import NOOP_DEFINITION, make_execution, make_workflow
from tests.ui import api_client, member
from workflows.models import Workflow

pytestmark = [pytest.mark.django_db]

V2 = {"steps": [{"id": "again", "action": "transform", "config": {"output": {"v": 2}}}]}


@pytest.fixture
def alice():
    return member(username="alice")


def test_a_created_workflow_belongs_to_the_callers_organization(alice):
    response = api_client(alice).post(
        "/api/workflows/", {"name": "nightly", "definition": NOOP_DEFINITION}, format="json"
    )

    assert response.status_code == 201, response.content
    workflow = Workflow.objects.get(pk=response.json()["id"])
    assert workflow.organization == alice.membership.organization
    assert response.json()["version"] == 1 and response.json()["trigger_type"] == "manual"


def test_the_list_holds_only_the_organizations_live_workflows(alice):
    mine = make_workflow(alice.membership.organization, name="mine")
    make_workflow(alice.membership.organization, name="gone", deleted_at=timezone.now())
    make_workflow(name="theirs")

    names = [w["name"] for w in api_client(alice).get("/api/workflows/").json()["results"]]

    assert names == [mine.name]


def test_changing_the_definition_makes_a_new_version(alice):
    workflow = make_workflow(alice.membership.organization)

    response = api_client(alice).patch(f"/api/workflows/{workflow.pk}/", {"definition": V2}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    assert api_client(alice).get(f"/api/workflows/{workflow.pk}/").json()["definition"] == V2


def test_definition_errors_are_reported_per_field(alice):
    bad = {"steps": [{"id": "ok", "action": "transform", "config": {}}, {"id": "2bad", "action": "teleport"}]}

    response = api_client(alice).post("/api/workflows/", {"name": "x", "definition": bad}, format="json")

    assert response.status_code == 400
    errors = response.json()["definition"]
    assert set(errors) >= {"steps[1].id", "steps[1].action"}
    assert "teleport" in errors["steps[1].action"][0]


def test_trigger_config_errors_are_reported_per_key(alice):
    response = api_client(alice).post(
        "/api/workflows/",
        {"name": "x", "definition": NOOP_DEFINITION, "trigger_type": "schedule", "trigger_config": {"cron": "nope"}},
        format="json",
    )

    assert response.status_code == 400
    assert "cron" in response.json()["trigger_config"]


def test_deleting_a_workflow_is_a_soft_delete_and_its_runs_keep_it(alice):
    workflow = make_workflow(alice.membership.organization)
    run = make_execution(workflow, status="success")
    api = api_client(alice)

    assert api.delete(f"/api/workflows/{workflow.pk}/").status_code == 204

    workflow.refresh_from_db()
    assert workflow.deleted_at is not None
    assert api.get(f"/api/workflows/{workflow.pk}/").status_code == 404
    assert api.get(f"/api/runs/{run.pk}/").json()["workflow"] == workflow.pk


def test_another_organizations_workflow_answers_404_to_every_verb(alice):
    theirs = make_workflow(name="theirs")
    api = api_client(alice)
    url = f"/api/workflows/{theirs.pk}/"

    assert api.get(url).status_code == 404
    assert api.patch(url, {"name": "mine now"}, format="json").status_code == 404
    assert api.put(url, {"name": "mine now", "definition": NOOP_DEFINITION}, format="json").status_code == 404
    assert api.delete(url).status_code == 404
    theirs.refresh_from_db()
    assert (theirs.name, theirs.deleted_at) == ("theirs", None)
