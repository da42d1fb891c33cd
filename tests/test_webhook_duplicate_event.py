"""The sender's event id is the dispatch key: a retried delivery of the same event, or a
replay of it within the tolerance window, makes no second run and answers with the first."""

import json

import pytest
from django.urls import reverse

from executions.models import Execution
from scheduler import webhooks
from scheduler.models import WebhookEndpoint
from tests.factories import make_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_same_event_delivered_twice_makes_one_run(client, producer_app, sqs_queues):
    workflow = make_workflow(trigger_type="event")
    endpoint = WebhookEndpoint.objects.get(workflow=workflow)
    url = reverse("hooks:intake", args=[endpoint.token])
    body = json.dumps({"n": 1}).encode()
    headers = webhooks.signed_headers(endpoint.get_secret(), body, event_id="evt_dup")

    first = client.post(url, data=body, content_type="application/json", headers=headers)
    replayed = client.post(url, data=body, content_type="application/json", headers=headers)  # byte for byte
    retried = client.post(
        url,
        data=body,
        content_type="application/json",
        headers=webhooks.signed_headers(endpoint.get_secret(), body, event_id="evt_dup"),  # re-signed later
    )

    assert first.status_code == replayed.status_code == retried.status_code == 202
    run_id = first.json()["run_id"]
    assert replayed.json() == retried.json() == {"run_id": run_id, "duplicate": True}
    assert Execution.objects.filter(workflow=workflow).count() == 1
    assert sqs_queues.wait_for_count("runs", 1, timeout=10) == 1

    other = client.post(
        url,
        data=body,
        content_type="application/json",
        headers=webhooks.signed_headers(endpoint.get_secret(), body, event_id="evt_other"),
    )
    assert other.status_code == 202 and other.json()["run_id"] != run_id


def test_event_ids_are_per_workflow(client, producer_app, sqs_queues):
    body = b"{}"
    runs = set()
    for _ in range(2):
        endpoint = WebhookEndpoint.objects.get(workflow=make_workflow(trigger_type="event"))
        response = client.post(
            reverse("hooks:intake", args=[endpoint.token]),
            data=body,
            content_type="application/json",
            headers=webhooks.signed_headers(endpoint.get_secret(), body, event_id="evt_same"),
        )
        runs.add(response.json()["run_id"])
    assert len(runs) == 2
