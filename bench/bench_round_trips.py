"""Database round trips per run, and the wait endpoint's latency (issue 11).

    .venv/bin/python bench/bench_round_trips.py                # both parts
    .venv/bin/python bench/bench_round_trips.py --runs 20 --waits 40 --show-sql

Part 1, round trips. A run is triggered through the API (Django's test client, token
auth, in-process; the SQS send is captured instead of sent, it costs no database round
trip) and consumed through the real consumer, in-process (`pipeline.consume.consume`,
the inline runtime, as tests/test_consume_inprocess.py does), on PostgreSQL. Every
round trip on the process's connection is counted: each statement (Django's
`connection.execute_wrapper`, savepoints included) plus, for every transaction that ran
a statement, its BEGIN and its COMMIT (psycopg sends each as a command of its own).
"run writes" are the producer's `enqueue` plus the whole consumer; the API request adds
its authentication and the workflow's lookup. Measured on main's code before issue 11
(ad2664b, 1-step and 2-step workflows, the same counting):

    1 step : run writes 22 round trips (12 statements, 5 transactions), API request +4
    2 steps: run writes 30 round trips (16 statements, 7 transactions)

and after (docs/decisions/0016: one statement per write, no transaction):

    1 step : run writes  6 round trips (6 statements, 0 transactions), API request +4
    2 steps: run writes  8 round trips (8 statements, 0 transactions)

Part 2, the wait endpoint. A request waits on a pending run in a thread (test client,
in-process) while this thread writes the run's terminal status through the status
writer; the latency is from that write's commit to the response being back. Measured
in the same run with LISTEN/NOTIFY (executions/notify.py) and with the poll alone
(CONVEYOR_WAIT_NOTIFY off, one re-read every CONVEYOR_WAIT_POLL_S). Target: ≤ 20 ms.

The benchmark creates its own database (`<name>`, default conveyor_bench_round_trips,
dropped at the end) on the server of DATABASE_URL (default the tests' local server).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("CONVEYOR_LOG_LEVEL", "WARNING")
import tests.testenv  # noqa: E402, F401  (the suite's development keys)

ONE_STEP = {"steps": [{"id": "noop", "action": "transform", "config": {"output": {"ok": True}}}]}
TWO_STEPS = {
    "steps": [
        {"id": "first", "action": "transform", "config": {"output": {"n": 1}}},
        {"id": "second", "action": "transform", "config": {"output": {"echo": "{{ steps.first.output.n }}"}}},
    ]
}


@dataclass
class Count:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0

    @property
    def round_trips(self) -> int:
        return len(self.statements) + 2 * self.transactions  # BEGIN and COMMIT


class Counter:
    """Counts the round trips of Django's default connection in this thread."""

    def __init__(self) -> None:
        self.current: Count | None = None

    def __call__(self, execute, sql, params, many, context):
        if self.current is not None:
            self.current.statements.append(sql)
        return execute(sql, params, many, context)

    def install(self):
        from django.db import connection

        original_commit = connection._commit

        def commit():
            raw = connection.connection
            if self.current is not None and raw is not None and raw.info.transaction_status != 0:  # not IDLE
                self.current.transactions += 1
            return original_commit()

        connection._commit = commit
        return connection.execute_wrapper(self)

    def measure(self, fn, *args, **kwargs) -> tuple[Count, object]:
        self.current = Count()
        try:
            result = fn(*args, **kwargs)
        finally:
            count, self.current = self.current, None
        return count, result


def _counting(fn, counter: Counter, into: Count):
    """`fn`, its round trips counted apart into `into` (and still in the caller's count)."""

    def counted(*args, **kwargs):
        saved, counter.current = counter.current, into
        try:
            return fn(*args, **kwargs)
        finally:
            counter.current = saved
            if saved is not None:
                saved.statements += into.statements
                saved.transactions += into.transactions

    return counted


def round_trips(runs: int, show_sql: bool) -> dict[str, tuple[int, int, int]]:
    from rest_framework.test import APIClient

    from executions import enqueue as enqueue_module
    from executions.models import Execution
    from messaging import messages
    from pipeline.consume import Outcome, consume
    from tests.factories import make_org, make_user, make_workflow
    from tests.ui import api_client

    user = make_user(make_org())
    client: APIClient = api_client(user)
    counter = Counter()
    sent: list[tuple[object, object]] = []
    results: dict[str, tuple[int, int, int]] = {}
    with (
        counter.install(),
        mock.patch.object(enqueue_module, "publish", lambda run_id, key, **kw: sent.append((run_id, key))),
    ):
        original_enqueue = enqueue_module.enqueue
        for label, definition in (("1 step", ONE_STEP), ("2 steps", TWO_STEPS)):
            workflow = make_workflow(user.membership.organization, definition=definition, runtime="inline")
            request_counts, run_counts = [], []
            for i in range(runs + 2):  # two warm-up runs
                producer = Count()

                with mock.patch("executions.services.enqueue", _counting(original_enqueue, counter, producer)):
                    request, response = counter.measure(
                        client.post, f"/api/workflows/{workflow.pk}/runs/", {}, format="json"
                    )
                assert response.status_code == 202, response.content
                run_id, key = sent.pop()
                worker, outcome = counter.measure(consume, messages.build(run_id, key), hostname="bench")
                assert outcome == Outcome.CLAIMED, outcome
                assert Execution.objects.get(pk=run_id).status == "success"
                if i < 2:
                    continue
                run = Count(producer.statements + worker.statements, producer.transactions + worker.transactions)
                request_counts.append(request.round_trips - producer.round_trips)
                run_counts.append((run.round_trips, len(run.statements), run.transactions))
                if show_sql and i == 2:
                    print(f"--- {label}: API request (besides enqueue)")
                    for sql in request.statements[: len(request.statements) - len(producer.statements)]:
                        print("   ", sql[:160])
                    print(f"--- {label}: enqueue ({producer.transactions} transactions)")
                    for sql in producer.statements:
                        print("   ", sql[:160])
                    print(f"--- {label}: consume ({worker.transactions} transactions)")
                    for sql in worker.statements:
                        print("   ", sql[:160])
            trips = statistics.median(c[0] for c in run_counts)
            statements = statistics.median(c[1] for c in run_counts)
            transactions = statistics.median(c[2] for c in run_counts)
            extra = statistics.median(request_counts)
            results[label] = (int(trips), int(statements), int(transactions))
            print(
                f"{label}: run writes {trips:.0f} round trips ({statements:.0f} statements, "
                f"{transactions:.0f} transactions), API request +{extra:.0f}  [median of {runs} runs]"
            )
    return results


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_latency(waits: int) -> None:
    from django.db import connection, connections
    from django.test import override_settings

    from executions import notify
    from executions.models import Execution
    from executions.transitions import transition
    from failures.statuses import Actor
    from tests.factories import make_execution, make_org, make_user, make_workflow
    from tests.ui import api_client

    user = make_user(make_org())
    workflow = make_workflow(user.membership.organization)
    blocked = threading.Event()  # the waiting request is in its wait proper, after its first read
    woken: list[float] = []  # when a notification woke it
    woken_cpu: list[float] = []  # and the waiting thread's CPU time then
    answered_cpu: list[float] = []
    original_wait = notify.Waiter.wait

    def observed_wait(self, timeout):
        blocked.set()
        result = original_wait(self, timeout)
        if result:
            woken.append(time.perf_counter())
            woken_cpu.append(time.thread_time())
        return result

    notify.Waiter.wait = observed_wait

    def one(mode: str) -> tuple[float, tuple[float, float, float] | None]:
        run = make_execution(workflow, status="pending")
        answered: list[float] = []
        blocked.clear()
        woken.clear()
        woken_cpu.clear()
        answered_cpu.clear()

        def waiter():
            try:
                body = api_client(user).get(f"/api/runs/{run.pk}/wait/?timeout=10").json()
                answered.append(time.perf_counter())
                answered_cpu.append(time.thread_time())
                assert body["terminal"], body
            finally:
                connections.close_all()

        thread = threading.Thread(target=waiter)
        thread.start()
        blocked.wait(10)
        time.sleep(0.01 + (hash(run.pk) % 200) / 1000)  # a phase the poll cannot know
        transition(run.pk, "cancelled", actor=Actor.OPERATOR, expected=["pending"])
        written = time.perf_counter()  # committed: autocommit
        thread.join(timeout=15)
        assert answered, f"{mode}: the wait did not answer"
        delivered = (woken[0] - written, answered[0] - woken[0], answered_cpu[0] - woken_cpu[0]) if woken else None
        return (answered[0] - written) * 1000, delivered

    def finished_request() -> float:
        run = make_execution(workflow, status="success")
        started = time.perf_counter()
        assert api_client(user).get(f"/api/runs/{run.pk}/wait/").json()["terminal"]
        return (time.perf_counter() - started) * 1000

    modes = [("notify", True), ("poll", False)]
    samples: dict[str, list[float]] = {mode: [] for mode, _ in modes}
    delivery: list[float] = []
    after_wake: list[float] = []
    after_wake_cpu: list[float] = []
    request: list[float] = []
    for i in range(waits + 2):
        for mode, on in modes:  # interleaved: the same machine load for both
            with override_settings(CONVEYOR_WAIT_NOTIFY=on):
                latency, delivered = one(mode)
            if i >= 2:
                samples[mode].append(latency)
                if mode == "notify" and delivered is not None:
                    delivery.append(delivered[0] * 1000)
                    after_wake.append(delivered[1] * 1000)
                    after_wake_cpu.append(delivered[2] * 1000)
        if i >= 2:
            request.append(finished_request())
    for mode, values in samples.items():
        print(
            f"wait, terminal write -> response, {mode:6}: p50 {_percentile(values, 0.5):6.1f} ms, "
            f"p95 {_percentile(values, 0.95):6.1f} ms  [{len(values)} waits]"
        )
    if delivery:
        print(
            f"  notify: the notification's delivery (write -> waiter woken): p50 {_percentile(delivery, 0.5):.1f} ms, "
            f"p95 {_percentile(delivery, 0.95):.1f} ms; then the response (one read of the run and its steps, "
            f"serialized): p50 {_percentile(after_wake, 0.5):.1f} ms, p95 {_percentile(after_wake, 0.95):.1f} ms, "
            f"of which CPU (the thread's own): p50 {_percentile(after_wake_cpu, 0.5):.1f} ms"
        )
    print(
        f"  the request's own cost (a wait on a finished run, no waiting): p50 {_percentile(request, 0.5):.1f} ms, "
        f"p95 {_percentile(request, 0.95):.1f} ms; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    notify.Waiter.wait = original_wait
    Execution.objects.filter(workflow=workflow).delete()
    notify.listener.stop()
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--waits", type=int, default=30)
    parser.add_argument("--database", default="conveyor_bench_round_trips")
    parser.add_argument("--show-sql", action="store_true")
    parser.add_argument("--skip-wait", action="store_true")
    args = parser.parse_args()
    os.environ["CONVEYOR_TEST_DATABASE_NAME"] = args.database

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if connection.vendor != "postgresql":
        raise SystemExit("this benchmark needs PostgreSQL (DATABASE_URL=postgres://...)")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        round_trips(args.runs, args.show_sql)
        if not args.skip_wait:
            wait_latency(args.waits)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
