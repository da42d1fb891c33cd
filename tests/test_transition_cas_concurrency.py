"""The compare-and-swap under two concurrent writers on two real PostgreSQL connections."""

import threading
import uuid

import pytest
from django.db import connection

from executions.models import Transition
from executions.transitions import fail, transition
from failures.classifier import system_fault
from failures.statuses import Actor, ExecutionStatus
from tests.factories import make_execution

S = ExecutionStatus


def _race(*writers):
    barrier = threading.Barrier(len(writers))
    results = [None] * len(writers)

    def run(index, writer):
        try:
            barrier.wait()
            results[index] = writer()
        finally:
            connection.close()  # each thread owns its own connection

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claims_one_wins_and_one_loses_cleanly():
    for _ in range(10):
        execution = make_execution()

        def claim(execution_id=execution.id):
            return transition(execution_id, S.RUNNING, actor=Actor.CONSUMER, values={"claim_token": uuid.uuid4()})

        results = _race(claim, claim)
        assert sorted(r.won for r in results) == [False, True]
        assert Transition.objects.filter(execution=execution, to_status=S.RUNNING).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_runtime_success_racing_the_reaper_leaves_exactly_one_terminal_write():
    for _ in range(10):
        token = uuid.uuid4()
        execution = make_execution(status=S.RUNNING, claim_token=token)

        def complete(execution_id=execution.id, token=token):
            return transition(execution_id, S.SUCCESS, actor=Actor.RUNTIME, claim_token=token, expected=[S.RUNNING])

        def reap(execution_id=execution.id):
            return fail(execution_id, system_fault("P-0003", "stale"), actor=Actor.REAPER, expected=[S.RUNNING])

        results = _race(complete, reap)
        assert sorted(r.won for r in results) == [False, True]
        execution.refresh_from_db()
        winner = next(r for r in results if r.won)
        assert execution.status == winner.to_status
        assert Transition.objects.filter(execution=execution).count() == 1
