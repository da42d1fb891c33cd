"""When the chain's RPC endpoint is down the poller reports N-0001 on its own metric and
log, invents no run and keeps its cursor; when the endpoint is back it carries on."""

import logging

import pytest
from prometheus_client import REGISTRY

from executions.models import Execution
from scheduler.blocks import poll_chain
from scheduler.models import ChainCursor
from tests.anvil import OWN_CHAIN_ID, chain_config, own_anvil  # noqa: F401
from tests.factories import make_workflow
from workflows.chains import chain

pytestmark = pytest.mark.django_db


def n0001() -> float:
    labels = {"chain_id": str(OWN_CHAIN_ID), "code": "N-0001"}
    return REGISTRY.get_sample_value("conveyor_block_poller_errors_total", labels) or 0.0


def test_a_stopped_node_is_n0001_for_the_poller_and_makes_no_run(own_anvil, settings, caplog):  # noqa: F811
    settings.CHAINS = [chain_config(own_anvil)]
    settings.BLOCK_RPC_TIMEOUT_S = 1.0
    workflow = make_workflow(trigger_type="block", trigger_config={"chain_id": OWN_CHAIN_ID, "every_n_blocks": 1})
    own_anvil.mine(5)
    cursor = poll_chain(chain(OWN_CHAIN_ID)).cursor_after
    own_anvil.mine(5)
    own_anvil.stop()
    before = n0001()

    with caplog.at_level(logging.ERROR, logger="conveyor.blocks"):
        report = poll_chain(chain(OWN_CHAIN_ID))

    assert report.error_code == "N-0001" and "RPC eth_chainId failed" in report.error
    assert n0001() == before + 1
    logged = [r for r in caplog.records if getattr(r, "error_code", "") == "N-0001"]
    assert logged and logged[0].chain_id == OWN_CHAIN_ID
    assert not Execution.objects.filter(workflow=workflow).exists()  # nothing invented
    row = ChainCursor.objects.get(chain_id=OWN_CHAIN_ID)
    assert row.last_block == cursor and row.last_error_code == "N-0001" and row.last_error_at is not None

    # The node is back (on the same URL); its blocks after the cursor fire, once.
    own_anvil.start()
    head = own_anvil.mine(cursor + 6)
    report = poll_chain(chain(OWN_CHAIN_ID))
    assert report.error_code == ""
    fired = sorted(Execution.objects.filter(workflow=workflow).values_list("dispatch_key", flat=True))
    assert fired == sorted(f"block:{workflow.pk}:{OWN_CHAIN_ID}:{b}" for b in range(cursor + 1, head - 1))
    assert ChainCursor.objects.get(chain_id=OWN_CHAIN_ID).last_error_code == ""


def test_an_rpc_url_with_a_key_in_it_never_appears_in_the_error(own_anvil, settings):  # noqa: F811
    config = chain_config(own_anvil)
    config["rpc_url"] = f"http://127.0.0.1:{own_anvil.port}/v3/sk-provider-key-123?token=abc"
    settings.CHAINS = [config]
    ChainCursor.objects.create(chain_id=OWN_CHAIN_ID, last_block=1)  # the poller had been running
    own_anvil.stop()

    report = poll_chain(chain(OWN_CHAIN_ID))

    assert report.error_code == "N-0001" and "<redacted>" in report.error
    stored = ChainCursor.objects.get(chain_id=OWN_CHAIN_ID).last_error
    for text in (report.error, stored):
        assert "sk-provider-key-123" not in text and "token=abc" not in text
