"""A signed delivery to a workflow's secret intake URL is accepted (202 with the run id),
its JSON body becomes the run's input and the run's message is queued."""

import json

import pytest
from django.urls import reverse

from executions.models import Execution
from scheduler import webhooks
from scheduler.models import WebhookEndpoint
from tests.factories import make_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_signed_event_is_accepted_and_becomes_a_pending_run(client, producer_app, sqs_queues):
    workflow = make_workflow(trigger_type="event")
    endpoint = WebhookEndpoint.objects.get(workflow=workflow)  # made when the workflow was saved
    body = json.dumps({"order": {"id": 42, "total": "9.90"}}).encode()

    response = client.post(
        reverse("hooks:intake", args=[endpoint.token]),
        data=body,
        content_type="application/json",
        headers=webhooks.signed_headers(endpoint.get_secret(), body, event_id="evt_001"),
    )

    assert response.status_code == 202, response.content
    answer = response.json()
    run = Execution.objects.get(pk=answer["run_id"])
    assert answer == {"run_id": str(run.pk), "duplicate": False}
    assert run.trigger_type == "event" and run.status == "pending"
    assert run.input == {"order": {"id": 42, "total": "9.90"}}
    assert run.dispatch_key == f"event:{workflow.pk}:evt_001"
    assert sqs_queues.wait_for_count("runs", 1, timeout=10) == 1


def test_the_intake_url_is_secret_and_unknown_urls_say_nothing(client):
    workflow = make_workflow(trigger_type="event")
    endpoint = WebhookEndpoint.objects.get(workflow=workflow)
    assert len(endpoint.token) >= 40 and endpoint.path == f"/hooks/{endpoint.token}/"
    assert client.post("/hooks/not-a-token/", data=b"{}", content_type="application/json").status_code == 404
    assert client.get(endpoint.path).status_code == 405

    workflow.trigger_type, workflow.trigger_config = "manual", {}
    workflow.save()
    assert client.post(endpoint.path, data=b"{}", content_type="application/json").status_code == 404


def test_a_workflow_that_is_not_event_triggered_has_no_intake_url():
    assert not WebhookEndpoint.objects.filter(workflow=make_workflow(trigger_type="manual")).exists()
