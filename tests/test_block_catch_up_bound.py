"""After a long stop, the block poller catches up at most CONVEYOR_BLOCK_CATCHUP_MAX_BLOCKS
behind the confirmed head; older blocks are skipped, counted and logged, never fired: the
runs they would have been are recorded as `system_error` BS-0002 runs that did no work."""

import logging

import pytest
from prometheus_client import REGISTRY

from executions.models import Execution
from scheduler.blocks import poll_chain
from tests.anvil import CONFIRMATIONS, anvil, anvil_chain  # noqa: F401
from tests.factories import make_workflow
from workflows.chains import chain

pytestmark = pytest.mark.django_db


def skipped() -> float:
    return REGISTRY.get_sample_value("conveyor_block_blocks_skipped_total", {"chain_id": "31337"}) or 0.0


def test_a_gap_beyond_the_bound_is_skipped_and_the_rest_caught_up(anvil, anvil_chain, settings, caplog):  # noqa: F811
    settings.BLOCK_CATCHUP_MAX_BLOCKS = 10
    workflow = make_workflow(trigger_type="block", trigger_config={"chain_id": 31337, "every_n_blocks": 2})
    cursor = poll_chain(chain(31337)).cursor_after
    before = skipped()

    head = anvil.mine(40)
    with caplog.at_level(logging.WARNING, logger="conveyor.blocks"):
        report = poll_chain(chain(31337))

    confirmed = head - CONFIRMATIONS
    assert report.skipped_blocks == confirmed - cursor - 10
    assert skipped() == before + report.skipped_blocks
    fired = sorted(
        int(k.rsplit(":", 1)[1])
        for k in Execution.objects.filter(workflow=workflow)
        .exclude(error_code="BS-0002")
        .values_list("dispatch_key", flat=True)
    )
    assert fired == [b for b in range(confirmed - 9, confirmed + 1) if b % 2 == 0]
    missed = sorted(
        int(k.rsplit(":", 1)[1])
        for k in Execution.objects.filter(workflow=workflow, error_code="BS-0002", status="system_error").values_list(
            "dispatch_key", flat=True
        )
    )
    assert missed == [b for b in range(cursor + 1, confirmed - 9) if b % 2 == 0]
    assert report.missed_runs == len(missed)
    assert report.cursor_after == confirmed
    assert any("blocks skipped" in r.getMessage() for r in caplog.records)
