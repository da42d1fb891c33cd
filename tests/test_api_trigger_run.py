"""POST /api/workflows/<id>/runs/ runs a workflow now: 202 with the run's id and status."""

import pytest
from django.core.cache import cache

from executions.models import Execution, Transition
from tests.factories import make_workflow
from tests.ui import api_client, member

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def test_a_triggered_run_is_accepted_as_a_pending_manual_run_with_its_input():
    user = member()
    workflow = make_workflow(user.membership.organization)

    response = api_client(user).post(f"/api/workflows/{workflow.pk}/runs/", {"input": {"order": 7}}, format="json")

    assert response.status_code == 202, response.content
    run = Execution.objects.get(pk=response.json()["run_id"])
    assert response.json() == {"run_id": str(run.pk), "status": "pending"}
    assert response["Location"] == f"/api/runs/{run.pk}/"
    assert (run.workflow, run.trigger_type, run.input) == (workflow, "manual", {"order": 7})
    assert Transition.objects.filter(execution=run, move="create", actor="producer").exists()


def test_a_disabled_workflow_is_refused_with_409_and_no_run():
    user = member()
    workflow = make_workflow(user.membership.organization, enabled=False)

    response = api_client(user).post(f"/api/workflows/{workflow.pk}/runs/", {}, format="json")

    assert response.status_code == 409
    assert not Execution.objects.exists()


def test_another_organizations_workflow_cannot_be_triggered():
    user = member()
    theirs = make_workflow()

    assert api_client(user).post(f"/api/workflows/{theirs.pk}/runs/", {}, format="json").status_code == 404
    assert not Execution.objects.exists()


def test_an_input_that_is_not_an_object_is_a_400():
    user = member()
    workflow = make_workflow(user.membership.organization)

    response = api_client(user).post(f"/api/workflows/{workflow.pk}/runs/", {"input": [1, 2]}, format="json")

    assert response.status_code == 400 and "input" in response.json()


def test_triggering_is_rate_limited_per_user(settings):
    settings.CONVEYOR_TRIGGER_RATE = "2/minute"
    user = member()
    workflow = make_workflow(user.membership.organization)
    api = api_client(user)
    url = f"/api/workflows/{workflow.pk}/runs/"

    codes = [api.post(url, {}, format="json").status_code for _ in range(3)]

    assert codes == [202, 202, 429]
    assert Execution.objects.count() == 2
    other = member(user.membership.organization)
    assert api_client(other).post(url, {}, format="json").status_code == 202  # per user


def test_runs_started_from_the_pages_share_the_users_budget(client, settings):
    settings.CONVEYOR_TRIGGER_RATE = "1/minute"
    user = member()
    workflow = make_workflow(user.membership.organization)
    client.force_login(user)

    assert api_client(user).post(f"/api/workflows/{workflow.pk}/runs/", {}, format="json").status_code == 202
    response = client.post(f"/workflows/{workflow.pk}/run/", follow=True)

    assert Execution.objects.count() == 1 and "Too many runs started" in response.content.decode()
