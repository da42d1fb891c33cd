"""The poller serves every chain the settings list, each with its own cursor and
confirmation depth; one chain's endpoint failing never holds up another."""

import pytest

from executions.models import Execution
from scheduler.blocks import poll_all
from scheduler.models import ChainCursor
from tests.anvil import CHAIN_ID, OWN_CHAIN_ID, anvil, chain_config, own_anvil  # noqa: F401
from tests.factories import make_org, make_workflow

pytestmark = pytest.mark.django_db


def test_two_chains_fire_their_own_workflows_and_a_dead_one_does_not_stop_the_other(anvil, own_anvil, settings):  # noqa: F811
    settings.CHAINS = [chain_config(anvil, confirmations=2), chain_config(own_anvil, confirmations=0)]
    settings.BLOCK_RPC_TIMEOUT_S = 1.0
    org = make_org()
    on_first = make_workflow(
        org, name="a", trigger_type="block", trigger_config={"chain_id": CHAIN_ID, "every_n_blocks": 1}
    )
    on_second = make_workflow(
        org, name="b", trigger_type="block", trigger_config={"chain_id": OWN_CHAIN_ID, "every_n_blocks": 1}
    )
    poll_all()
    first_head, second_head = anvil.mine(3), own_anvil.mine(3)

    reports = {r.chain_id: r for r in poll_all()}

    assert reports[CHAIN_ID].cursor_after == first_head - 2  # two confirmations
    assert reports[OWN_CHAIN_ID].cursor_after == second_head  # none
    assert all(key.startswith(f"block:{on_first.pk}:{CHAIN_ID}:") for key in reports[CHAIN_ID].fired)
    assert all(key.startswith(f"block:{on_second.pk}:{OWN_CHAIN_ID}:") for key in reports[OWN_CHAIN_ID].fired)
    assert len(reports[OWN_CHAIN_ID].fired) == 3

    own_anvil.stop()
    head = anvil.mine(2)
    reports = {r.chain_id: r for r in poll_all()}
    assert reports[OWN_CHAIN_ID].error_code == "N-0001"
    assert reports[CHAIN_ID].error_code == "" and reports[CHAIN_ID].cursor_after == head - 2
    assert ChainCursor.objects.get(chain_id=OWN_CHAIN_ID).last_block == second_head
    assert Execution.objects.filter(workflow=on_second).count() == 3
