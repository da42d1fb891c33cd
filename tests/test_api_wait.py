"""GET /api/runs/<id>/wait/ returns as soon as the run is terminal, or after the timeout
(capped at 30 s), and says which."""

import threading
import time

import pytest
from django.db import connections

from executions.api.views import WAIT_MAX_S, _wait_timeout
from executions.transitions import transition
from failures.statuses import Actor
from tests.factories import make_execution, make_workflow
from tests.ui import api_client, member


@pytest.mark.django_db
def test_a_finished_run_is_returned_at_once():
    user = member()
    run = make_execution(make_workflow(user.membership.organization), status="success")

    started = time.monotonic()
    body = api_client(user).get(f"/api/runs/{run.pk}/wait/").json()

    assert body["terminal"] is True and body["status"] == "success"
    assert time.monotonic() - started < 1


@pytest.mark.django_db
def test_a_run_still_in_progress_is_returned_after_the_timeout():
    user = member()
    run = make_execution(make_workflow(user.membership.organization), status="running")

    started = time.monotonic()
    body = api_client(user).get(f"/api/runs/{run.pk}/wait/?timeout=0.5").json()

    assert body["terminal"] is False and body["status"] == "running"
    assert 0.5 <= time.monotonic() - started < 2


@pytest.mark.django_db(transaction=True)
def test_the_wait_ends_when_the_run_turns_terminal():
    user = member()
    run = make_execution(make_workflow(user.membership.organization), status="pending")

    def cancel_and_close():
        transition(run.pk, "cancelled", actor=Actor.OPERATOR, expected=["pending"])
        connections.close_all()  # the timer thread's own connection: the test database is dropped later

    cancel = threading.Timer(0.5, cancel_and_close)

    cancel.start()
    started = time.monotonic()
    body = api_client(user).get(f"/api/runs/{run.pk}/wait/?timeout=10").json()
    cancel.join()

    assert body["terminal"] is True and body["status"] == "cancelled"
    assert time.monotonic() - started < 3


def test_the_timeout_is_capped_at_30_seconds_and_must_be_a_number():
    from rest_framework.exceptions import ValidationError

    assert WAIT_MAX_S == 30
    assert _wait_timeout("3600") == 30 and _wait_timeout("2.5") == 2.5 and _wait_timeout(None) == 30
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(ValidationError):
            _wait_timeout(bad)


@pytest.mark.django_db
def test_another_organizations_run_cannot_be_waited_on():
    user = member()
    theirs = make_execution(status="success")
    assert api_client(user).get(f"/api/runs/{theirs.pk}/wait/").status_code == 404
