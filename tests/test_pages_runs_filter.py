"""The runs page's status filter offers every status, System Error included, and an
unknown value shows its error rather than every run."""

import pytest

from failures.statuses import ExecutionStatus
from tests.factories import make_execution, make_org, make_workflow
from tests.ui import member

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def acme(client):
    org = make_org("acme")
    client.force_login(member(org))
    workflow = make_workflow(org)
    return {status: make_execution(workflow, status=status) for status in ExecutionStatus.values}


def test_the_status_filter_offers_every_status_and_selects_exactly_one(client, acme):
    response = client.get("/runs/", {"status": "system_error"})
    offered = [label for value, label in response.context["form"].fields["status"].choices if value]
    assert offered == [label for _, label in ExecutionStatus.choices] and "System Error" in offered
    assert [run.pk for run in response.context["runs"]] == [acme["system_error"].pk]


def test_an_unknown_status_filter_shows_its_error_and_no_runs(client, acme):
    response = client.get("/runs/?status=failed")
    assert list(response.context["runs"]) == [] and "Select a valid choice" in response.content.decode()
