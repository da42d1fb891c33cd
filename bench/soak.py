"""Soak: push N runs through the real pipeline while injecting faults at random, then
check the invariants (issue 3).

    .venv/bin/python bench/soak.py               # 500 runs
    .venv/bin/python bench/soak.py --runs 100 --fault-rate 0.4 --seed 7
    .venv/bin/python bench/soak.py --runs 10000 --outage-rate 0.005   # about an hour

It starts moto's SQS server behind a cuttable TCP proxy, a runs worker, a maintenance
worker and beat (the reaper), against a PostgreSQL database of its own
(`conveyor_soak`), with the end-to-end test thresholds (stale after 1.5 s, start threshold
6 s, reaper every second). Runs are paced (at most --window unfinished) so moto's queue
stays small. Faults: the SQS endpoint cut during enqueue, a message deleted before any
worker sees it, the supervising pool process SIGKILLed or SIGSTOPped mid-step, the runtime
child SIGKILLed, a deadline, the same message delivered twice, poison and forged messages,
and user faults (a bad template) that must never end as system_error. Among them, at
--outage-rate, SQS outages of every shape (refused, reset, black hole, half-open) lasting
--outage-seconds: the run queued just before the cut must still succeed (healed from
P-0005 if the outage outlasted the start threshold), the run queued during it is MS-0001,
and the first run queued after the restore must succeed; its delay is the recovery time,
tabled per shape.

Exit status 0 when every invariant holds; the table of faults injected vs statuses
observed is printed either way.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SOAK_DATABASE = os.environ.get("CONVEYOR_SOAK_DATABASE", "conveyor_soak")
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{SOAK_DATABASE}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "conveyor-soak-secret-key-0123456789abcdef0123456789")
os.environ.setdefault("CONVEYOR_MESSAGE_SIGNING_KEY", "conveyor-soak-signing-key-0123456789")
for key, value in (
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(key, value)
os.environ.setdefault("CONVEYOR_PYTHON_CALLABLES", "tests.callables.sleep,workflows.actions.examples.add_numbers")


def _ensure_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (SOAK_DATABASE,)).fetchone():
            conn.execute(f'CREATE DATABASE "{SOAK_DATABASE}"')


_ensure_database()
import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from executions.enqueue import EnqueueFailed, enqueue  # noqa: E402
from executions.models import Execution, Step  # noqa: E402
from failures.statuses import TERMINAL, ExecutionStatus  # noqa: E402
from messaging import messages  # noqa: E402
from tenancy.models import Organization  # noqa: E402
from tests.harness.moto_server import MotoServer  # noqa: E402
from tests.harness.processes import CeleryProcesses, build_worker_env, settings_for_worker_env  # noqa: E402
from tests.harness.sqs import SqsQueues, new_prefix  # noqa: E402
from tests.harness.tcp_proxy import TcpProxy  # noqa: E402
from workflows.models import Workflow  # noqa: E402

S = ExecutionStatus

# fault → what the run may end as: (status, code) pairs; "heal" means a counted self-heal.
EXPECTED: dict[str, set[tuple[str, str]]] = {
    "none": {(S.SUCCESS, "")},
    "user_error": {(S.ERROR, "")},
    "sqs_cut_at_enqueue": {(S.SYSTEM_ERROR, "MS-0001")},
    "message_dropped": {(S.SYSTEM_ERROR, "P-0005")},
    "pool_killed": {(S.SYSTEM_ERROR, "P-0003"), (S.SYSTEM_ERROR, "P-0001")},
    "pool_paused": {(S.SUCCESS, "heal"), (S.SYSTEM_ERROR, "P-0003")},
    "child_killed": {(S.SYSTEM_ERROR, "P-0003")},
    "deadline": {(S.SYSTEM_ERROR, "E-0001")},
    "duplicate_delivery": {(S.SUCCESS, "")},
}
OUTAGE_SHAPES = ("refuse", "reset", "blackhole", "half-open")
for _shape in OUTAGE_SHAPES:
    # Queued before the cut: received late, or aged P-0005 and healed by its late message.
    EXPECTED[f"before {_shape} outage"] = {(S.SUCCESS, "")}
    EXPECTED[f"during {_shape} outage"] = {(S.SYSTEM_ERROR, "MS-0001")}
    EXPECTED[f"after {_shape} outage"] = {(S.SUCCESS, "")}
# A message a killed pool process had taken, or whose acknowledgement failed during an SQS
# cut, comes back after the visibility timeout: short here, so such a run heals (late
# message after P-0005) or is dropped as a duplicate within the soak's horizon.
VISIBILITY_TIMEOUT_S = 10
QUEUE_FAULTS = ("poison", "forged")
RANDOM_FAULTS = sorted(name for name in EXPECTED if "outage" not in name)


def sleeping(seconds: float, steps: int) -> dict:
    step = {"action": "python", "config": {"callable": "tests.callables.sleep", "kwargs": {"seconds": seconds}}}
    return {"steps": [{"id": f"s{i}", **step} for i in range(steps)]}


DEFINITIONS = {
    "quick": {"steps": [{"id": "t", "action": "transform", "config": {"output": {"n": "{{ input.n }}"}}}]},
    "slow": sleeping(0.6, 3),
    "bad_template": {"steps": [{"id": "t", "action": "transform", "config": {"output": "{{ input.nope.deeper }}"}}]},
}


class Soak:
    def __init__(self, args):
        self.args = args
        self.random = random.Random(args.seed)
        self.planned: dict[uuid.UUID, str] = {}
        self.queue_faults: Counter = Counter()
        self.outages: dict[str, list[tuple[float, float]]] = defaultdict(list)  # shape -> (length, recovery)
        self.notes: list[str] = []

    # -- set-up ---------------------------------------------------------------------
    def __enter__(self):
        self.stack = ExitStack()
        log_dir = Path(tempfile.mkdtemp(prefix="conveyor-soak-"))
        self.log_dir = log_dir
        self.moto = self.stack.enter_context(MotoServer(log_path=log_dir / "moto.log"))
        host, port = self.moto.url.rsplit("//", 1)[1].split(":")
        self.proxy = self.stack.enter_context(TcpProxy(host, int(port)))
        self.sqs = SqsQueues(self.moto.url, new_prefix(), visibility_timeout=VISIBILITY_TIMEOUT_S).create()
        env = build_worker_env(
            database_url=os.environ["DATABASE_URL"],
            sqs_endpoint_url=self.proxy.url,
            queue_prefix=self.sqs.prefix,
            visibility_timeout=VISIBILITY_TIMEOUT_S,
            extra={
                "CONVEYOR_PYTHON_CALLABLES": os.environ["CONVEYOR_PYTHON_CALLABLES"],
                "CONVEYOR_LOG_LEVEL": "WARNING",
                # As the outage tests: a consumer rebuilds its connection after 1 + 4 s.
                "CONVEYOR_CONSUMER_STALL_MARGIN_S": "4",
                "CONVEYOR_SQS_READ_TIMEOUT_S": "4",
            },
        )
        self.stack.enter_context(settings_for_worker_env(env))
        self.processes = CeleryProcesses(log_dir, default_env=env)
        self.stack.callback(self.processes.stop_all)
        self.worker = self.processes.start_worker(queues="runs", concurrency=2)
        self.processes.start_worker(queues="maintenance", concurrency=1)
        self.processes.start_beat()
        org, _ = Organization.objects.get_or_create(slug="soak", defaults={"name": "Soak"})
        tag = uuid.uuid4().hex[:6]
        self.workflows = {
            name: Workflow.objects.create(organization=org, name=f"soak-{name}-{tag}", definition=definition)
            for name, definition in DEFINITIONS.items()
        }
        self.workflows["deadline"] = Workflow.objects.create(
            organization=org, name=f"soak-deadline-{tag}", definition=sleeping(5, 1), deadline_seconds=1
        )
        return self

    def __exit__(self, *exc):
        self.stack.close()

    # -- faults ---------------------------------------------------------------------
    def _wait(self, predicate, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            close_old_connections()
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        return None

    def _mid_step(self, execution_id):
        def ready():
            row = Execution.objects.filter(pk=execution_id).values("status", "worker").first()
            if row and row["status"] == S.RUNNING and "runtime=" in row["worker"]:
                return Step.objects.filter(execution_id=execution_id).exists() and row["worker"]
            return None

        return self._wait(ready)

    def outage(self, n: int) -> None:
        """An SQS outage of a random shape, with a run queued just before, one during and
        one after it (the recovery probe)."""
        shape = self.random.choice(OUTAGE_SHAPES)
        low, high = self.args.outage_seconds
        length = self.random.uniform(low, high)
        # A refused message being dead-lettered must not lose its copy to the cut.
        self._wait(lambda: self.sqs.count("dead-letter") >= sum(self.queue_faults.values()), 15)
        before = enqueue(self.workflows["quick"], trigger_type="manual", input={"n": n}).execution
        self.planned[before.pk] = f"before {shape} outage"
        self.proxy.cut(shape)
        cut_at = time.monotonic()
        try:
            during = enqueue(self.workflows["quick"], trigger_type="manual", input={"n": n}).execution
            self.notes.append(f"a run queued during a {shape} outage was sent: {during.pk}")
            self.planned[during.pk] = "none"
        except EnqueueFailed as failed:
            self.planned[failed.execution.pk] = f"during {shape} outage"
        time.sleep(max(0.0, length - (time.monotonic() - cut_at)))
        self.proxy.restore()
        restored = time.monotonic()
        after = None
        for _ in range(5):
            try:
                after = enqueue(self.workflows["quick"], trigger_type="manual", input={"n": n}).execution
                break
            except EnqueueFailed as failed:
                # A connection the outage left half-open in this producer's pool: the send
                # is MS-0001 (honestly recorded), and the next one opens a fresh connection.
                self.planned[failed.execution.pk] = f"during {shape} outage"
        if after is None:
            self.notes.append(f"no run could be queued after a {shape} outage")
            self.outages[shape].append((length, float("inf")))
            return
        self.planned[after.pk] = f"after {shape} outage"
        done = self._wait(lambda: Execution.objects.filter(pk=after.pk, status__in=TERMINAL).exists(), 120)
        recovery = time.monotonic() - restored if done else float("inf")
        self.outages[shape].append((length, recovery))

    def run_one(self, n: int) -> None:
        if self.args.outage_rate and self.random.random() < self.args.outage_rate:
            self.outage(n)
            return
        fault = "none"
        if self.random.random() < self.args.fault_rate:
            fault = self.random.choice(RANDOM_FAULTS + list(QUEUE_FAULTS))
        if fault in QUEUE_FAULTS:
            self._queue_fault(fault)
            fault = "none"
        workflow = {
            "user_error": "bad_template",
            "deadline": "deadline",
            "pool_killed": "slow",
            "pool_paused": "slow",
            "child_killed": "slow",
        }.get(fault, "quick")
        if fault == "sqs_cut_at_enqueue":
            self.proxy.cut()
            try:
                enqueue(self.workflows[workflow], trigger_type="manual", input={"n": n})
            except EnqueueFailed as failed:
                self.planned[failed.execution.pk] = fault
            finally:
                self.proxy.restore()
            return
        if fault == "message_dropped":
            # SendMessage succeeds but the message never reaches a worker: it lands on a
            # queue no worker reads (an idle worker would win any race to delete it).
            from django.test import override_settings

            with override_settings(RUNS_QUEUE="lost"):
                execution = enqueue(self.workflows[workflow], trigger_type="manual", input={"n": n}).execution
            self.planned[execution.pk] = fault
            return
        execution = enqueue(self.workflows[workflow], trigger_type="manual", input={"n": n}).execution
        self.planned[execution.pk] = fault
        if fault == "duplicate_delivery":
            from config.celery import app

            app.send_task("executions.consume_run", args=[messages.build(execution.pk)], queue="runs")
        elif fault in ("pool_killed", "pool_paused", "child_killed"):
            worker = self._mid_step(execution.pk)
            if not worker:
                self.notes.append(f"{fault}: run {execution.pk} never reached a step; fault not injected")
                self.planned[execution.pk] = "none"
                return
            pool = int(re.search(r"pid=(\d+)", worker).group(1))
            child = int(re.search(r"runtime=(\d+)", worker).group(1))
            if fault == "pool_killed":
                os.kill(pool, signal.SIGKILL)
            elif fault == "child_killed":
                os.kill(child, signal.SIGKILL)
            else:
                os.kill(pool, signal.SIGSTOP)
                self._wait(lambda: Execution.objects.filter(pk=execution.pk, status=S.SYSTEM_ERROR).exists(), 15)
                os.kill(pool, signal.SIGCONT)

    def _queue_fault(self, kind: str) -> None:
        from config.celery import app

        if kind == "poison":
            self.sqs.send_raw("runs", "\x00poison " + uuid.uuid4().hex)
        else:
            forged = messages.build(uuid.uuid4())
            forged["sig"] = "f" * 64
            app.send_task("executions.consume_run", args=[forged], queue="runs")
        self.queue_faults[kind] += 1

    # -- the run --------------------------------------------------------------------
    def unfinished(self) -> int:
        close_old_connections()
        return Execution.objects.filter(pk__in=list(self.planned)).exclude(status__in=TERMINAL).count()

    def drive(self) -> None:
        for n in range(self.args.runs):
            while self.unfinished() >= self.args.window:
                time.sleep(0.05)
            self.run_one(n)
            if (n + 1) % 50 == 0:
                print(f"  {n + 1}/{self.args.runs} runs pushed", flush=True)
        # start threshold + visibility timeout (a stranded message returns) + stale threshold
        # + two reaper intervals + slack for a loaded 2-core machine
        horizon = 6 + VISIBILITY_TIMEOUT_S + 1.5 + 2 * 1 + 30
        if not self._wait(lambda: self.unfinished() == 0, timeout=horizon):
            self.notes.append(f"{self.unfinished()} runs not terminal within the reaper horizon ({horizon}s)")
        # A message stranded in a killed pool process (or whose acknowledgement failed during
        # a cut) returns after the visibility timeout and heals its P-0005 run: let it.
        time.sleep(VISIBILITY_TIMEOUT_S + 3)
        if not self._wait(lambda: self.unfinished() == 0, timeout=horizon):
            self.notes.append(f"{self.unfinished()} runs not terminal after late messages ({horizon}s)")

    def check(self) -> bool:
        from executions.models import Transition

        ok = not any("not terminal" in note for note in self.notes)
        table: dict[str, Counter] = defaultdict(Counter)
        healed = set(
            Transition.objects.filter(execution_id__in=list(self.planned), move="heal-late-success").values_list(
                "execution_id", flat=True
            )
        )
        late = set(
            Transition.objects.filter(execution_id__in=list(self.planned), move="heal-late-message").values_list(
                "execution_id", flat=True
            )
        )
        for row in Execution.objects.filter(pk__in=list(self.planned)).values("id", "status", "error_code"):
            fault = self.planned[row["id"]]
            observed = (row["status"], "heal" if row["id"] in healed else row["error_code"])
            label = f"{observed[0]} {observed[1]}".strip() + (" (late message healed)" if row["id"] in late else "")
            table[fault][label] += 1
            if observed not in EXPECTED[fault]:
                ok = False
                self.notes.append(f"{fault}: run {row['id']} ended {observed}, expected one of {EXPECTED[fault]}")
            if fault in ("none", "user_error", "duplicate_delivery") and row["status"] == S.SYSTEM_ERROR:
                ok = False
        if Execution.objects.filter(pk__in=list(self.planned)).count() != len(self.planned):
            ok = False
            self.notes.append("runs missing or duplicated")
        from executions.models import Transition as T

        twice = T.objects.filter(execution_id__in=list(self.planned), move__in=["claim", "heal-late-message"])
        claims = Counter(twice.values_list("execution_id", flat=True))
        if any(count > 1 for count in claims.values()):
            ok = False
            self.notes.append("a run was claimed twice")
        main_left = self.sqs.wait_for_count("runs", 0, timeout=VISIBILITY_TIMEOUT_S + 15)
        # A copy whose delete failed during a cut is dead-lettered again when it returns:
        # what must match is the set of distinct refused messages.
        dead = len({m["Body"] for m in self.sqs.drain("dead-letter", timeout=15)})
        injected = sum(self.queue_faults.values())
        if main_left:
            ok = False
            self.notes.append(f"{main_left} messages left in the main queue")
        if dead != injected:
            ok = False
            self.notes.append(f"dead-letter queue holds {dead}, expected exactly {injected} (poison + forged)")

        print("\nfault injected            runs  statuses observed")
        for fault in sorted(table):
            total = sum(table[fault].values())
            observed = ", ".join(f"{k} x{v}" for k, v in sorted(table[fault].items()))
            print(f"  {fault:<22} {total:>5}  {observed}")
        for kind, count in sorted(self.queue_faults.items()):
            print(f"  {kind + ' message':<22} {count:>5}  dead-lettered (queue holds {dead} in all)")
        if self.outages:
            print("\noutage shape   outages  length (s)   recovery after restore (s): median / max")
            for shape, seen in sorted(self.outages.items()):
                lengths = sorted(length for length, _ in seen)
                recoveries = sorted(recovery for _, recovery in seen)
                median = recoveries[len(recoveries) // 2]
                print(
                    f"  {shape:<12} {len(seen):>7}  {lengths[0]:.0f}-{lengths[-1]:.0f}"
                    f"{'':>8}{median:.1f} / {recoveries[-1]:.1f}"
                )
                if recoveries[-1] == float("inf"):
                    ok = False
                    self.notes.append(f"a {shape} outage's probe run never finished")
        print(f"\nmain queue left: {main_left}; dead-letter: {dead}; logs: {self.log_dir}")
        for note in self.notes:
            print(f"  note: {note}")
        print("INVARIANTS HOLD" if ok else "INVARIANTS VIOLATED")
        return ok


def main() -> int:
    parser = argparse.ArgumentParser(description="Soak the pipeline with random faults.")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--fault-rate", type=float, default=0.25)
    parser.add_argument("--window", type=int, default=4, help="unfinished runs at most (keeps waits < 6 s)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--outage-rate", type=float, default=0.0, help="chance per run of an SQS outage first")
    parser.add_argument(
        "--outage-seconds",
        type=lambda text: tuple(float(part) for part in text.split(",")),
        default=(3.0, 30.0),
        help="shortest,longest outage (default 3,30)",
    )
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    with Soak(args) as soak:
        started = time.monotonic()
        soak.drive()
        ok = soak.check()
        print(f"{args.runs} runs in {time.monotonic() - started:.0f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
