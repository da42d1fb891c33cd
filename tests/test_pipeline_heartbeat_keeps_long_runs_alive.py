"""A run that works longer than the stale threshold is kept alive by its heartbeat, in
both runtimes, while the reaper sweeps every second."""

import pytest

from executions.enqueue import enqueue
from executions.models import Transition
from tests.e2e import sleeping, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("runtime", ["isolated", "inline"])
def test_a_step_longer_than_the_stale_threshold_is_not_reaped(pipeline, runtime):
    pipeline.worker()
    pipeline.reaper()
    execution = enqueue(pipeline.workflow(sleeping(4.0), runtime=runtime), trigger_type="manual").execution

    finished = wait_status(execution.pk, timeout=30)

    assert finished.status == "success", finished.error_message
    assert not Transition.objects.filter(execution=finished, actor="reaper").exists()
