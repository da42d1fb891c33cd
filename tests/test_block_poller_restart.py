"""End to end on anvil: the block poller (celery beat → maintenance worker) fires every
N confirmed blocks; killed and restarted, it carries on from its database cursor without
skipping a block or repeating one."""

import json

import pytest

from executions.models import Execution
from scheduler.models import ChainCursor
from tests.anvil import CONFIRMATIONS, anvil, anvil_chain  # noqa: F401
from tests.e2e import pipeline, wait_for  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
EVERY = 3


def fired(workflow) -> list[int]:
    keys = Execution.objects.filter(workflow=workflow).values_list("dispatch_key", flat=True)
    return sorted(int(key.rsplit(":", 1)[1]) for key in keys)


def test_the_poller_survives_a_restart_without_skipping_or_repeating_blocks(pipeline, anvil, anvil_chain, sqs_queues):  # noqa: F811
    workflow = pipeline.workflow(trigger_type="block", trigger_config={"chain_id": 31337, "every_n_blocks": EVERY})
    env = {
        "CONVEYOR_CHAINS": json.dumps([anvil_chain]),
        "CONVEYOR_BLOCK_POLL_S": "0.3",
        # A poller killed mid-pass holds its lease until it expires: keep that short here.
        "CONVEYOR_BLOCK_POLL_LEASE_S": "2",
    }

    def start_poller():
        worker = pipeline.worker(queues="maintenance", **env)
        beat = pipeline.processes.start_beat({"PROMETHEUS_MULTIPROC_DIR": str(pipeline.metrics_dir), **env})
        return worker, beat

    def caught_up(head: int):
        cursor = ChainCursor.objects.filter(chain_id=31337).first()
        return cursor if cursor and cursor.last_block == head - CONFIRMATIONS else None

    worker, beat = start_poller()
    start = wait_for(lambda: ChainCursor.objects.filter(chain_id=31337).first(), timeout=30).last_block
    head = anvil.mine(10)
    wait_for(lambda: caught_up(head), timeout=30)
    before_restart = fired(workflow)
    assert before_restart == [b for b in range(start + 1, head - CONFIRMATIONS + 1) if b % EVERY == 0]

    beat.stop()
    worker.stop()  # SIGKILL: whatever it was doing
    head = anvil.mine(14)  # blocks mined while no poller runs

    start_poller()
    wait_for(lambda: caught_up(head), timeout=30)
    expected = [b for b in range(start + 1, head - CONFIRMATIONS + 1) if b % EVERY == 0]
    assert fired(workflow) == expected  # nothing skipped
    assert sqs_queues.count("runs") == len(expected)  # nothing repeated: one message per run
    assert pipeline.metric("conveyor_block_fires_total", chain_id="31337", outcome="fired") == len(expected)
