"""The runs pages need a login and show only the user's organization: another
organization's run or workflow is a 404, a user in no organization gets a 403."""

import pytest
from django.contrib.auth import get_user_model

from executions.models import Execution
from tests.factories import make_execution, make_org, make_workflow
from tests.ui import member

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def theirs():
    workflow = make_workflow(make_org("globex"), name="globex-secret-workflow")
    return workflow, make_execution(workflow, status="pending")


def test_every_page_asks_an_anonymous_visitor_to_log_in(client, theirs):
    workflow, run = theirs
    for url in ["/runs/", f"/runs/{run.pk}/", f"/runs/{run.pk}/status/", "/workflows/", f"/workflows/{workflow.pk}/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), url


def test_another_organizations_run_and_workflow_are_404_on_every_page(client, theirs):
    workflow, run = theirs
    client.force_login(member(make_org("acme")))

    for url in [f"/runs/{run.pk}/", f"/runs/{run.pk}/status/", f"/workflows/{workflow.pk}/"]:
        assert client.get(url).status_code == 404, url
    for url in [f"/runs/{run.pk}/cancel/", f"/runs/{run.pk}/rerun/", f"/workflows/{workflow.pk}/run/"]:
        assert client.post(url).status_code == 404, url
    assert "globex-secret-workflow" not in client.get("/runs/").content.decode()
    assert "globex-secret-workflow" not in client.get("/workflows/").content.decode()
    run.refresh_from_db()
    assert run.status == "pending" and Execution.objects.count() == 1


def test_a_user_in_no_organization_is_refused(client):
    client.force_login(get_user_model().objects.create_user(username="loner", password="x"))
    assert client.get("/runs/").status_code == 403


def test_the_runs_list_is_the_users_organizations(client, theirs):
    acme = make_org("acme")
    mine = make_execution(make_workflow(acme, name="billing"), status="success")
    client.force_login(member(acme))
    response = client.get("/runs/")
    assert [run.pk for run in response.context["runs"]] == [mine.pk]
