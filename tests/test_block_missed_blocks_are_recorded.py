"""Blocks beyond the catch-up bound after an outage are recorded as runs of their own,
`system_error` BS-0002 with no work done: the latest few one by one, the older rest in one
summary record per workflow; a later poll never records or fires them again."""

import pytest
from prometheus_client import REGISTRY

from executions.models import Execution
from scheduler.blocks import poll_chain
from tests.anvil import CONFIRMATIONS, anvil, anvil_chain  # noqa: F401
from tests.factories import make_workflow
from workflows.chains import chain

pytestmark = pytest.mark.django_db


def missed_counter() -> float:
    labels = {"producer": "block", "code": "BS-0002"}
    return REGISTRY.get_sample_value("conveyor_missed_dispatches_total", labels) or 0.0


def test_blocks_beyond_the_bound_are_recorded_capped_with_a_summary(anvil, anvil_chain, settings):  # noqa: F811
    settings.BLOCK_CATCHUP_MAX_BLOCKS = 10
    settings.MISSED_RUN_RECORDS_MAX = 4
    workflow = make_workflow(trigger_type="block", trigger_config={"chain_id": 31337, "every_n_blocks": 3})
    cursor = poll_chain(chain(31337)).cursor_after
    before = missed_counter()

    head = anvil.mine(60)
    report = poll_chain(chain(31337))

    confirmed = head - CONFIRMATIONS
    beyond = [b for b in range(cursor + 1, confirmed - 9) if b % 3 == 0]
    assert report.missed_runs == len(beyond) > 4
    records = Execution.objects.filter(workflow=workflow, error_code="BS-0002")
    singles = sorted(r.input["block"]["number"] for r in records if r.input.get("missed") is True)
    assert singles == beyond[-4:]
    (summary,) = [r for r in records if isinstance(r.input.get("missed"), dict)]
    assert summary.input["missed"] == {"count": len(beyond) - 4, "first": str(beyond[0]), "last": str(beyond[-5])}
    assert {(r.status, r.error_type, r.steps_started) for r in records} == {("system_error", "system", 0)}
    assert all("not of your workflow" in r.customer_message for r in records)
    assert missed_counter() == before + len(beyond)

    # The next poll finds nothing new to record, and no block both ran and was recorded.
    assert poll_chain(chain(31337)).missed_runs == 0
    keys = list(Execution.objects.filter(workflow=workflow).values_list("dispatch_key", flat=True))
    assert len(keys) == len(set(keys))
