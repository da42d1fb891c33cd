"""When the queue is down, the admin's "Run now" reports the failed run's id and the
customer-facing reason (MS-0001); the run is already system_error."""

import pytest

from executions.models import Execution
from tests.factories import make_workflow
from tests.ui import staff_client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_run_now_during_an_sqs_outage_reports_the_run_and_the_customer_message(producer_app, sqs_proxy, sqs_queues):
    operator, _ = staff_client()
    workflow = make_workflow(name="billing")
    sqs_proxy.cut()

    response = operator.post(
        "/admin/executions/workflow/", {"action": "run_now", "_selected_action": [workflow.pk]}, follow=True
    )

    run = Execution.objects.get()
    assert (run.status, run.error_code) == ("system_error", "MS-0001")
    html = response.content.decode()
    assert f'<li class="error">Billing: run <a href="/admin/executions/execution/{run.pk}/change/">' in html
    assert "could not be queued: The platform could not queue this run." in html and "(reference MS-0001)" in html
    assert "SendMessage" not in html
