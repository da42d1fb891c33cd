"""When the queue cannot take the run's message, the trigger answers 503 with the run's id
and the customer message (MS-0001), never the internal cause; with the queue up the
message is on the queue."""

import pytest

from executions.models import Execution
from tests.factories import make_workflow
from tests.ui import api_client, member

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_sqs_outage_answers_503_with_the_run_id_and_the_customer_message(producer_app, sqs_proxy, sqs_queues):
    user = member()
    workflow = make_workflow(user.membership.organization)
    sqs_proxy.cut()

    response = api_client(user).post(f"/api/workflows/{workflow.pk}/runs/", {}, format="json")

    assert response.status_code == 503
    body = response.json()
    run = Execution.objects.get(pk=body["run_id"])
    assert (run.status, run.error_code) == ("system_error", "MS-0001")
    assert body == {"run_id": str(run.pk), "error": run.customer_message}
    assert "could not queue this run" in body["error"] and "MS-0001" in body["error"]
    assert "SendMessage" in run.error_message  # the cause stays internal...
    assert "SendMessage" not in response.content.decode() and "127.0.0.1" not in response.content.decode()


def test_with_the_queue_up_the_runs_message_is_sent(producer_app, sqs_queues):
    user = member()
    workflow = make_workflow(user.membership.organization)

    response = api_client(user).post(f"/api/workflows/{workflow.pk}/runs/", {}, format="json")

    assert response.status_code == 202
    assert sqs_queues.wait_for_count("runs", 1, timeout=10) == 1
