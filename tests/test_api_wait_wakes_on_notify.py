"""On PostgreSQL the wait endpoint answers on the status writer's NOTIFY, through one
listener connection per process shared by every waiting request, which survives the
loss of that connection (executions/notify.py, docs/decisions/0016).

The poll and the safety-net re-read are set to 1000 s, so within the 30 s cap only a
notification can wake a waiting request: an answer with `terminal` true is one."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from executions import notify
from executions.transitions import transition
from failures.statuses import Actor
from tests.factories import make_execution, make_workflow
from tests.harness.processes import wait_until
from tests.ui import api_client, member

pytestmark = pytest.mark.django_db(transaction=True)
GENEROUS_S = 30


@pytest.fixture(autouse=True)
def only_a_notification_wakes(settings):
    settings.CONVEYOR_WAIT_NOTIFY = True
    settings.CONVEYOR_WAIT_POLL_S = 1000.0
    settings.CONVEYOR_WAIT_RECHECK_S = 1000.0


@pytest.fixture
def waiting(monkeypatch):
    """Run ids whose request is blocked in the wait proper (after its first read)."""
    blocked: list[str] = []
    lock = threading.Lock()
    original = notify.Waiter.wait

    def wait(self, timeout):
        with lock:
            blocked.extend(run for run, events in notify.listener._waiters.items() if self.event in events)
        return original(self, timeout)

    monkeypatch.setattr(notify.Waiter, "wait", wait)
    return blocked


class WaitingRequest(threading.Thread):
    def __init__(self, user, execution):
        super().__init__(daemon=True)
        self.user, self.execution, self.body = user, execution, None

    def run(self):
        try:
            self.body = api_client(self.user).get(f"/api/runs/{self.execution.pk}/wait/?timeout=30").json()
        finally:
            connections.close_all()


def _wait_blocked(waiting: list[str], *runs) -> None:
    assert wait_until(lambda: all(str(run.pk) in waiting for run in runs), timeout=GENEROUS_S, interval=0.01)
    assert wait_until(notify.listener.connected.is_set, timeout=GENEROUS_S, interval=0.01)


def _cancel(run) -> None:
    assert transition(run.pk, "cancelled", actor=Actor.OPERATOR, expected=["pending"])


def _listen_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE %s",
            [f"LISTEN {notify.RUN_STATUS_CHANNEL}%"],
        )
        return cursor.fetchone()[0]


def test_a_waiting_request_answers_on_the_notification_of_the_terminal_write(waiting):
    user = member()
    run = make_execution(make_workflow(user.membership.organization), status="pending")
    request = WaitingRequest(user, run)
    request.start()
    _wait_blocked(waiting, run)

    _cancel(run)
    request.join(GENEROUS_S + 5)

    assert request.body is not None and request.body["terminal"] is True and request.body["status"] == "cancelled"


def test_the_listener_reconnects_after_its_connection_is_killed_and_a_later_wait_still_wakes(waiting):
    user = member()
    workflow = make_workflow(user.membership.organization)
    first = make_execution(workflow, status="pending")
    request = WaitingRequest(user, first)
    request.start()
    _wait_blocked(waiting, first)
    killed = notify.listener.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [killed])

    assert wait_until(
        lambda: notify.listener.connected.is_set() and notify.listener.backend_pid not in (None, killed),
        timeout=GENEROUS_S,
        interval=0.05,
    )
    later = make_execution(workflow, status="pending")
    second = WaitingRequest(user, later)
    second.start()
    _wait_blocked(waiting, later)
    _cancel(later)
    second.join(GENEROUS_S + 5)
    _cancel(first)
    request.join(GENEROUS_S + 5)

    assert second.body is not None and second.body["terminal"] is True and second.body["status"] == "cancelled"
    assert request.body is not None and request.body["terminal"] is True


def test_many_concurrent_waits_share_one_listener_connection(waiting):
    user = member()
    workflow = make_workflow(user.membership.organization)
    runs = [make_execution(workflow, status="pending") for _ in range(8)]
    requests = [WaitingRequest(user, run) for run in runs]
    for request in requests:
        request.start()
    _wait_blocked(waiting, *runs)

    assert _listen_connections() == 1
    for run in runs:
        _cancel(run)
    for request in requests:
        request.join(GENEROUS_S + 5)

    assert [r.body and (r.body["terminal"], r.body["status"]) for r in requests] == [(True, "cancelled")] * len(runs)
