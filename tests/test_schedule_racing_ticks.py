"""Two dispatcher ticks at the same moment (two beat processes, or a slow tick
overlapping the next) still enqueue every fire time exactly once: the dispatch key is
unique in the database, whoever inserts it first."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from executions.models import Execution
from scheduler.models import ScheduleState
from scheduler.schedule import tick
from tests.factories import make_org, make_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
WORKFLOWS = 12


def test_two_ticks_racing_on_two_connections_enqueue_each_fire_time_once(producer_app, sqs_queues):
    now = datetime(2026, 6, 1, 10, 0, 30, tzinfo=UTC)  # a fixed clock: the same fire times every run
    org = make_org()
    with time_machine.travel(now - timedelta(minutes=3), tick=False):
        workflows = [
            make_workflow(org, name=f"every-minute-{i}", trigger_type="schedule", trigger_config={"cron": "* * * * *"})
            for i in range(WORKFLOWS)
        ]
    start = threading.Barrier(2)
    reports, failures = [], []

    def dispatcher():
        try:
            start.wait(timeout=10)
            reports.append(tick(now))  # the same moment: both see the same fire times due
        except Exception as exc:  # reported below: an exception in a thread fails nothing by itself
            failures.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures and len(reports) == 2
    assert all(report.errors == 0 for report in reports)
    fired = [key for report in reports for key in report.fired]
    assert len(fired) == len(set(fired)) == WORKFLOWS
    assert sum(r.duplicates for r in reports) + len(fired) <= 2 * WORKFLOWS
    runs = Execution.objects.filter(workflow__in=workflows).exclude(error_code="CS-0002")
    assert runs.count() == WORKFLOWS
    # Armed three minutes ago and never ticked since: the two fire times before the latest
    # were missed, and are recorded once each however many ticks race (CS-0002).
    missed = Execution.objects.filter(workflow__in=workflows, error_code="CS-0002")
    assert missed.count() == 2 * WORKFLOWS
    assert len(set(missed.values_list("dispatch_key", flat=True))) == 2 * WORKFLOWS
    assert sorted(runs.values_list("dispatch_key", flat=True)) == sorted(fired)
    assert sqs_queues.wait_for_count("runs", WORKFLOWS, timeout=10) == WORKFLOWS  # one message per run
    fire_time = now.replace(second=0, microsecond=0)
    assert set(ScheduleState.objects.filter(workflow__in=workflows).values_list("last_fire_at", flat=True)) == {
        fire_time
    }
