"""On PostgreSQL the status writer notifies `conveyor_run_status` with the run's id in the
statement that writes a terminal status: delivered when that status commits, never for
a rolled-back or lost write, never for a non-terminal move."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import connection, transaction

from executions.notify import RUN_STATUS_CHANNEL
from executions.transitions import transition
from failures.statuses import Actor
from tests.factories import make_execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listening():
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f"LISTEN {RUN_STATUS_CHANNEL}")

        def received() -> list[str]:
            return [n.payload for n in conn.notifies(timeout=0.5)]

        yield received


def test_a_committed_terminal_write_notifies_the_run_id(listening):
    run = make_execution(status="pending")
    assert transition(run.pk, "cancelled", actor=Actor.OPERATOR, expected=["pending"])
    assert listening() == [str(run.pk)]


def test_a_rolled_back_terminal_write_notifies_nothing(listening):
    run = make_execution(status="pending")
    with pytest.raises(RuntimeError), transaction.atomic():
        assert transition(run.pk, "cancelled", actor=Actor.OPERATOR, expected=["pending"])
        raise RuntimeError("the caller's transaction fails after the write")
    assert listening() == []


def test_a_lost_write_and_a_non_terminal_move_notify_nothing(listening):
    finished = make_execution(status="success")
    assert not transition(finished.pk, "cancelled", actor=Actor.OPERATOR, expected=["pending", "running"])
    pending = make_execution(status="pending")
    assert transition(
        pending.pk, "running", actor=Actor.CONSUMER, expected=["pending"], values={"claim_token": uuid.uuid4()}
    )
    assert listening() == []
