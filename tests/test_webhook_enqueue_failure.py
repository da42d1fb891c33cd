"""A delivery whose run cannot be queued is answered 503 with the run id and ES-0001; the
run is system_error at once. The sender's retry of that event, once the queue is back,
is what makes it run: one retry run, linked to the failed one."""

import json

import pytest
from django.urls import reverse
from prometheus_client import REGISTRY

from executions.models import Execution
from scheduler import webhooks
from scheduler.models import WebhookEndpoint
from tests.e2e import moves
from tests.factories import make_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def failures() -> float:
    return REGISTRY.get_sample_value("conveyor_enqueue_failures_total", {"producer": "event", "code": "ES-0001"}) or 0.0


def test_sqs_cut_answers_503_es0001_and_the_senders_retry_makes_the_run(client, producer_app, sqs_proxy, sqs_queues):
    workflow = make_workflow(trigger_type="event")
    endpoint = WebhookEndpoint.objects.get(workflow=workflow)
    url = reverse("hooks:intake", args=[endpoint.token])
    body = json.dumps({"n": 7}).encode()
    before = failures()
    sqs_proxy.cut()

    def deliver():
        headers = webhooks.signed_headers(endpoint.get_secret(), body, event_id="evt_outage")
        return client.post(url, data=body, content_type="application/json", headers=headers)

    response = deliver()

    assert response.status_code == 503
    answer = response.json()
    failed = Execution.objects.get(pk=answer["run_id"])
    assert answer["error"] == "ES-0001" and "ES-0001" in answer["message"]
    assert (failed.status, failed.error_type, failed.error_code) == ("system_error", "system", "ES-0001")
    assert failed.safe_to_rerun and moves(failed) == ["create", "fail-before-start"]
    assert failures() == before + 1

    sqs_proxy.restore()
    retried = deliver()

    assert retried.status_code == 202
    run = Execution.objects.get(pk=retried.json()["run_id"])
    assert retried.json() == {"run_id": str(run.pk), "duplicate": False, "retry_of": str(failed.pk)}
    assert (run.trigger_type, run.status, run.rerun_of_id, run.attempt) == ("event", "pending", failed.pk, 2)
    assert run.input == {"n": 7} and run.dispatch_key == f"retry:{failed.pk}:2"
    assert sqs_queues.wait_for_count("runs", 1, timeout=10) == 1

    again = deliver()  # one more retry of the same event: still that one run
    assert again.status_code == 202 and again.json() == {"run_id": str(run.pk), "duplicate": True}
    assert Execution.objects.filter(workflow=workflow).count() == 2
