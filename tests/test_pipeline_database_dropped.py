"""The worker's PostgreSQL connections terminated mid-run (pg_terminate_backend): the run
recovers, or ends C-0002 — it is never left running and never falls through to C-0001."""

import pytest
from django.db import connection

from executions.enqueue import enqueue
from executions.models import Step
from tests.e2e import sleeping, wait_for, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _terminate_other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("runtime", ["isolated", "inline"])
def test_terminated_database_connections_mid_run_end_in_recovery_or_c0002(pipeline, runtime):
    pipeline.worker()
    execution = enqueue(pipeline.workflow(sleeping(0.6, steps=3), runtime=runtime), trigger_type="manual").execution
    wait_for(lambda: Step.objects.filter(execution_id=execution.pk).exists(), timeout=20)

    assert _terminate_other_backends() >= 1

    finished = wait_status(execution.pk, timeout=30)
    assert finished.status in ("success", "system_error")
    if finished.status == "system_error":
        assert (finished.error_code, finished.error_category) == ("C-0002", "database"), finished.error_message
    assert finished.error_code != "C-0001"
