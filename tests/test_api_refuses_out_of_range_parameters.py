"""Query parameters outside what the schema documents are a 400 naming the parameter, never
a 500 from the database nor a silent default: a page size, a workflow id past the bigint
range, a date whose UTC offset PostgreSQL cannot take (converted) or that has no UTC."""

import pytest

from tests.factories import make_execution, make_workflow
from tests.ui import api_client, member

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def client():
    user = member()
    make_execution(make_workflow(user.membership.organization), status="success")
    return api_client(user)


@pytest.mark.parametrize("page_size", ["true", "0", "-3", "201", "1.5"])
def test_a_page_size_outside_one_to_two_hundred_is_refused(client, page_size):
    response = client.get(f"/api/runs/?page_size={page_size}")
    assert response.status_code == 400 and "page_size" in response.json()


def test_a_page_size_within_bounds_is_used(client):
    assert len(client.get("/api/runs/?page_size=1").json()["results"]) == 1


@pytest.mark.parametrize("workflow", ["35084650426468060000", "1.5", "0"])
def test_a_workflow_id_that_no_row_can_have_is_refused(client, workflow):
    response = client.get(f"/api/runs/?workflow={workflow}")
    assert response.status_code == 400 and "workflow" in response.json()


def test_a_date_with_an_offset_postgresql_refuses_is_taken_in_utc(client):
    response = client.get("/api/runs/", {"created_after": "0071-08-10T01:21:33.8-21:31"})
    assert response.status_code == 200 and len(response.json()["results"]) == 1


def test_a_date_with_no_utc_equivalent_is_refused(client):
    response = client.get("/api/runs/", {"created_before": "0001-01-01T00:00:00+10:00"})
    assert response.status_code == 400 and "created_before" in response.json()
