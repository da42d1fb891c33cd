"""conveyor_runs_finished_total, the error budget's SLI (docs/decisions/0011-error-budget.md),
counts every run once, at the first terminal status the status writer committed for it:
never for a compare-and-swap that lost or was rolled back, never again for a self-heal or
a reclassification. Real PostgreSQL, real commits (the count is taken on commit)."""

import threading
import uuid

import pytest
from django.db import connection, transaction
from prometheus_client import REGISTRY

from executions.transitions import fail, reclassify, transition
from failures.classifier import Classification, system_fault
from failures.statuses import TERMINAL, Actor, ErrorType, ExecutionStatus
from tests.factories import make_execution

S = ExecutionStatus
pytestmark = pytest.mark.django_db(transaction=True)

USER_ERROR = Classification(ErrorType.USER, "workflow", "", "typed", "bad template")
EXTERNAL_ERROR = Classification(ErrorType.EXTERNAL, "external_service", "", "http-status", "HTTP 503 from the API")


def counts() -> dict[str, float]:
    return {
        status: REGISTRY.get_sample_value("conveyor_runs_finished_total", {"status": status}) for status in TERMINAL
    }


def counted_since(before: dict[str, float]) -> dict[str, float]:
    """What was counted since `before`, the statuses with nothing left out."""
    after = counts()
    return {status: after[status] - before[status] for status in TERMINAL if after[status] != before[status]}


def claimed():
    """A run the consumer claimed, as the pipeline does it, and its claim token."""
    execution = make_execution()
    token = uuid.uuid4()
    assert transition(execution.id, S.RUNNING, actor=Actor.CONSUMER, values={"claim_token": token})
    return execution, token


def finish_with_success():
    execution, token = claimed()
    return transition(execution.id, S.SUCCESS, actor=Actor.RUNTIME, claim_token=token)


def finish_with_a_user_error():
    execution, token = claimed()
    return fail(execution.id, USER_ERROR, actor=Actor.RUNTIME, claim_token=token)


def finish_with_an_external_error():
    execution, token = claimed()
    return fail(execution.id, EXTERNAL_ERROR, actor=Actor.RUNTIME, claim_token=token)


def reap_a_lost_run():
    execution, _ = claimed()
    return fail(execution.id, system_fault("P-0003", "worker lost"), actor=Actor.REAPER, expected=[S.RUNNING])


def fail_a_send():
    execution = make_execution()
    return fail(execution.id, system_fault("E-0002", "SQS unreachable"), actor=Actor.PRODUCER, expected=[S.PENDING])


def skip_a_disabled_workflows_run():
    execution = make_execution()
    return transition(execution.id, S.SKIPPED, actor=Actor.CONSUMER, expected=[S.PENDING], reason="workflow disabled")


def cancel_a_pending_run():
    execution = make_execution()
    return transition(execution.id, S.CANCELLED, actor=Actor.API, reason="cancelled by its user")


def cancel_a_running_run():
    execution, _ = claimed()
    return transition(execution.id, S.CANCELLED, actor=Actor.OPERATOR, reason="stopped by staff")


@pytest.mark.parametrize(
    "finish, status",
    [
        (finish_with_success, S.SUCCESS),
        (finish_with_a_user_error, S.ERROR),
        (finish_with_an_external_error, S.ERROR),
        (reap_a_lost_run, S.SYSTEM_ERROR),
        (fail_a_send, S.SYSTEM_ERROR),
        # Counted by the counter; the SLI's rules leave them out (alerts.yml).
        (skip_a_disabled_workflows_run, S.SKIPPED),
        (cancel_a_pending_run, S.CANCELLED),
        (cancel_a_running_run, S.CANCELLED),
    ],
)
def test_a_run_reaching_a_terminal_status_is_counted_once_under_that_status(finish, status):
    before = counts()
    assert finish().won
    assert counted_since(before) == {status: 1}


def test_every_terminal_status_is_exported_at_zero_before_any_run_finishes():
    # The series exist from the process's start, so rate() sees a fresh installation's
    # first increments (the label values are created at import).
    assert all(value is not None for value in counts().values())


def test_a_run_healed_by_its_late_message_is_not_counted_again_when_it_finishes():
    execution = make_execution()
    before = counts()
    assert fail(execution.id, system_fault("P-0005", "never received"), actor=Actor.REAPER, expected=[S.PENDING])
    token = uuid.uuid4()
    healed = transition(execution.id, S.RUNNING, actor=Actor.CONSUMER, values={"claim_token": token})
    assert healed.move == "heal-late-message"
    assert transition(execution.id, S.SUCCESS, actor=Actor.RUNTIME, claim_token=token)
    assert counted_since(before) == {S.SYSTEM_ERROR: 1}


def test_a_healed_run_that_fails_again_is_not_counted_again():
    execution = make_execution()
    before = counts()
    assert fail(execution.id, system_fault("P-0005", "never received"), actor=Actor.REAPER, expected=[S.PENDING])
    token = uuid.uuid4()
    assert transition(execution.id, S.RUNNING, actor=Actor.CONSUMER, values={"claim_token": token})
    assert fail(execution.id, USER_ERROR, actor=Actor.RUNTIME, claim_token=token)
    assert counted_since(before) == {S.SYSTEM_ERROR: 1}


def test_a_reaped_run_healed_to_success_by_its_own_claim_is_not_counted_again():
    execution, token = claimed()
    before = counts()
    assert fail(execution.id, system_fault("P-0003", "worker lost"), actor=Actor.REAPER, expected=[S.RUNNING])
    healed = transition(execution.id, S.SUCCESS, actor=Actor.RUNTIME, claim_token=token)
    assert healed.move == "heal-late-success"
    assert counted_since(before) == {S.SYSTEM_ERROR: 1}


def test_a_reclassification_either_way_does_not_count_the_run_again():
    execution, token = claimed()
    before = counts()
    assert fail(execution.id, USER_ERROR, actor=Actor.RUNTIME, claim_token=token)
    assert reclassify(execution.id, system_fault("C-0002", "db was down"), reason="RDS failover", operator="ops")
    assert reclassify(execution.id, USER_ERROR, reason="it was the template after all", operator="ops")
    assert counted_since(before) == {S.ERROR: 1}


def test_a_status_write_that_loses_its_compare_and_swap_counts_nothing():
    execution, token = claimed()
    assert transition(execution.id, S.SUCCESS, actor=Actor.RUNTIME, claim_token=token)
    before = counts()
    late = fail(execution.id, system_fault("P-0003", "stale"), actor=Actor.REAPER, expected=[S.RUNNING])
    assert not late.won
    assert counted_since(before) == {}


def test_a_status_write_its_caller_rolls_back_counts_nothing():
    execution, token = claimed()
    before = counts()
    with pytest.raises(RuntimeError), transaction.atomic():
        assert transition(execution.id, S.SUCCESS, actor=Actor.RUNTIME, claim_token=token)
        raise RuntimeError("the caller's transaction fails after the status write")
    assert counted_since(before) == {}
    execution.refresh_from_db()
    assert execution.status == S.RUNNING


def test_a_runtime_success_racing_the_reaper_counts_the_run_once():
    for _ in range(5):
        execution, token = claimed()
        barrier = threading.Barrier(2)
        results = []

        def write(finish, results=results, barrier=barrier):
            try:
                barrier.wait()
                results.append(finish())
            finally:
                connection.close()  # each thread owns its own connection

        def complete(execution_id=execution.id, token=token):
            return transition(execution_id, S.SUCCESS, actor=Actor.RUNTIME, claim_token=token, expected=[S.RUNNING])

        def reap(execution_id=execution.id):
            return fail(execution_id, system_fault("P-0003", "stale"), actor=Actor.REAPER, expected=[S.RUNNING])

        before = counts()
        threads = [threading.Thread(target=write, args=(finish,)) for finish in (complete, reap)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        winner = next(result for result in results if result.won)
        assert sorted(result.won for result in results) == [False, True]
        assert counted_since(before) == {winner.to_status: 1}
