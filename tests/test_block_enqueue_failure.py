"""A block-triggered run whose message cannot be sent ends system_error BS-0001 at once;
the block counts as handled, so no second run is made for it."""

import pytest
from prometheus_client import REGISTRY

from executions.models import Execution
from scheduler.blocks import poll_chain
from tests.anvil import CONFIRMATIONS, anvil, anvil_chain  # noqa: F401
from tests.e2e import moves
from tests.factories import make_workflow
from workflows.chains import chain

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def failures() -> float:
    return REGISTRY.get_sample_value("conveyor_enqueue_failures_total", {"producer": "block", "code": "BS-0001"}) or 0.0


def test_sqs_cut_during_a_poll_makes_a_system_error_bs0001(producer_app, sqs_proxy, sqs_queues, anvil, anvil_chain):  # noqa: F811
    workflow = make_workflow(trigger_type="block", trigger_config={"chain_id": 31337, "every_n_blocks": 1})
    poll_chain(chain(31337))
    head = anvil.mine(1)
    before = failures()
    sqs_proxy.cut()

    report = poll_chain(chain(31337))

    assert report.failed == [f"block:{workflow.pk}:31337:{head - CONFIRMATIONS}"] and report.fired == []
    run = Execution.objects.get(workflow=workflow)
    assert (run.status, run.error_type, run.error_code) == ("system_error", "system", "BS-0001")
    assert "could not queue this block-triggered run" in run.customer_message and run.safe_to_rerun
    assert moves(run) == ["create", "fail-before-start"]
    assert failures() == before + 1
    assert report.cursor_after == head - CONFIRMATIONS  # the block was handled

    sqs_proxy.restore()
    assert poll_chain(chain(31337)).fired == []
    assert Execution.objects.filter(workflow=workflow).count() == 1
    assert sqs_queues.count("runs") == 0
