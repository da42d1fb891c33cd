"""Every form of the runs pages (log in, run now, re-run, cancel, log out) carries a CSRF
token, and a post without one is refused."""

import pytest
from django.test import Client

from executions.models import Execution
from tests.factories import make_execution, make_workflow
from tests.ui import PASSWORD, member

pytestmark = [pytest.mark.django_db]


def test_a_post_without_the_csrf_token_is_refused():
    user = member()
    workflow = make_workflow(user.membership.organization)
    pending = make_execution(workflow, status="pending")
    client = Client(enforce_csrf_checks=True)
    assert client.post("/login/", {"username": user.username, "password": PASSWORD}).status_code == 403
    client.force_login(user)

    for url in [f"/workflows/{workflow.pk}/run/", f"/runs/{pending.pk}/cancel/"]:
        assert client.post(url).status_code == 403, url
    pending.refresh_from_db()
    assert pending.status == "pending" and Execution.objects.count() == 1


def test_the_forms_carry_the_token_and_work_with_it():
    user = member()
    workflow = make_workflow(user.membership.organization)
    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/login/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in login_page
    client.force_login(user)

    page = client.get(f"/workflows/{workflow.pk}/").content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    response = client.post(f"/workflows/{workflow.pk}/run/", {"csrfmiddlewaretoken": token})

    run = Execution.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert 'name="csrfmiddlewaretoken"' in client.get(f"/runs/{run.pk}/").content.decode()  # cancel form
