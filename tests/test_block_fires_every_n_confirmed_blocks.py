"""On a real chain (anvil), a block-triggered workflow fires for every confirmed block
whose number is divisible by its N, once, with the block's number, hash and timestamp as
its input; blocks not yet confirmed wait."""

import pytest

from executions.models import Execution
from scheduler.blocks import poll_chain
from scheduler.models import ChainCursor
from tests.anvil import CONFIRMATIONS, anvil, anvil_chain  # noqa: F401
from tests.factories import make_org, make_workflow
from workflows.chains import chain

pytestmark = pytest.mark.django_db


def fired_blocks(workflow) -> list[int]:
    keys = Execution.objects.filter(workflow=workflow).values_list("dispatch_key", flat=True)
    return sorted(int(key.rsplit(":", 1)[1]) for key in keys)


def multiples(n: int, after: int, upto: int) -> list[int]:
    return [b for b in range(after + 1, upto + 1) if b % n == 0 and b > 0]


def test_a_workflow_fires_every_n_blocks_once_they_are_confirmed(anvil, anvil_chain):  # noqa: F811
    org = make_org()
    every5 = make_workflow(
        org, name="every-5", trigger_type="block", trigger_config={"chain_id": 31337, "every_n_blocks": 5}
    )
    every3 = make_workflow(
        org, name="every-3", trigger_type="block", trigger_config={"chain_id": 31337, "every_n_blocks": 3}
    )
    disabled = make_workflow(
        org, name="off", enabled=False, trigger_type="block", trigger_config={"chain_id": 31337, "every_n_blocks": 1}
    )
    anvil_config = chain(31337)

    first = poll_chain(anvil_config)  # first sight: the cursor starts at the confirmed head, no history replay
    start = first.head - CONFIRMATIONS
    assert first.fired == [] and ChainCursor.objects.get(chain_id=31337).last_block == max(start, 0)
    start = max(start, 0)

    head = anvil.mine(12)
    report = poll_chain(anvil_config)
    confirmed = head - CONFIRMATIONS
    assert report.head == head and report.cursor_after == confirmed
    assert fired_blocks(every5) == multiples(5, start, confirmed)
    assert fired_blocks(every3) == multiples(3, start, confirmed)
    assert fired_blocks(disabled) == []

    # The two newest blocks were not confirmed: mining two more confirms them.
    waiting = multiples(5, confirmed, head)
    anvil.mine(CONFIRMATIONS)
    poll_chain(anvil_config)
    assert fired_blocks(every5) == multiples(5, start, head)
    assert set(waiting) <= set(fired_blocks(every5))

    # Nothing new on the chain: nothing new fires.
    assert poll_chain(anvil_config).fired == []
    assert len(fired_blocks(every5)) == Execution.objects.filter(workflow=every5).count()


def test_the_run_input_carries_the_block_number_hash_and_timestamp(anvil, anvil_chain):  # noqa: F811
    workflow = make_workflow(trigger_type="block", trigger_config={"chain_id": 31337, "every_n_blocks": 1})
    poll_chain(chain(31337))
    head = anvil.mine(1 + CONFIRMATIONS)
    poll_chain(chain(31337))

    number = head - CONFIRMATIONS
    run = Execution.objects.get(workflow=workflow, dispatch_key=f"block:{workflow.pk}:31337:{number}")
    block = anvil.block(number)
    assert run.trigger_type == "block" and run.status == "pending"
    assert run.input == {
        "block": {"number": number, "hash": block["hash"], "timestamp": int(block["timestamp"], 16)},
        "chain": {"chain_id": 31337, "name": "anvil-31337"},
    }
