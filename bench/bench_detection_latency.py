"""Detection latency: how long a run's system error takes to be written after its pool
process is lost or its Celery time limit fires, with the failure hooks and reaper-only,
at the DEFAULT heartbeat/stale/sweep thresholds (10 s / 60 s / 60 s), in one run.

    .venv/bin/python bench/bench_detection_latency.py              # 3 rounds per mode
    .venv/bin/python bench/bench_detection_latency.py --rounds 5 --modes hook

Each round starts three runs on one prefork worker (concurrency 3, isolated runtime, a
runtime interpreter that takes --slow-start-s to start, --time-limit on the worker) and
injects one failure into each: the pool process SIGKILLed before the first step, the pool
process SIGKILLed mid-step, and Celery's hard time limit. Mode `hook` runs the worker with
CONVEYOR_FAILURE_HOOKS=1 (the default), mode `reaper-only` with 0: the "before".

Two latencies per run: from the failure (the kill, or the limit: started_at + limit, which
is a few ms late, since Celery counts from the task's acceptance) to
the system_error row's transition, and from the run's last heartbeat (or start) to it,
which is what conveyor_detection_latency_seconds records. p50 and max per failure/mode.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
BENCH_DATABASE = os.environ.get("CONVEYOR_BENCH_DATABASE", "conveyor_bench_detection")
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
os.environ.setdefault("CONVEYOR_LOG_LEVEL", "WARNING")


def _ensure_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')


_ensure_database()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench._common import BenchPipeline  # noqa: E402  (sets Django up)
from failures.statuses import ExecutionStatus  # noqa: E402
from tests.e2e import CALLABLES, sleeping, slow_start_python  # noqa: E402

DEFAULTS = {  # config/settings.py's own defaults, spelled out: the bench's whole point
    "CONVEYOR_HEARTBEAT_INTERVAL_S": "10",
    "CONVEYOR_STALE_AFTER_S": "60",
    "CONVEYOR_REAPER_INTERVAL_S": "60",
    "CONVEYOR_START_THRESHOLD_S": "900",
}
MODES = {"hook": "1", "reaper-only": "0"}
FAILURES = ("pool SIGKILL before first step", "pool SIGKILL mid-step", "Celery hard time limit")


@dataclass
class Sample:
    failure: str
    mode: str
    code: str
    actor: str
    from_failure_s: float
    from_heartbeat_s: float


def _pids(execution) -> tuple[int, int | None]:
    from tests.e2e import supervisor_pids

    return supervisor_pids(execution.pk)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        from django.db import close_old_connections

        close_old_connections()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout}s")
        time.sleep(0.05)


def one_round(workflow, mode: str, time_limit: float, timeout: float) -> list[Sample]:
    from executions.enqueue import enqueue
    from executions.models import Execution, Step, Transition

    runs = {failure: enqueue(workflow, trigger_type="manual").execution for failure in FAILURES}
    failed_at: dict[str, datetime] = {}

    def handed_over(execution):
        return Execution.objects.filter(pk=execution.pk, status="running", worker__contains="runtime=").exists()

    for failure in FAILURES:
        _wait(lambda e=runs[failure]: handed_over(e), 120, f"{failure}: run handed to its runtime")
    # Before the first step: the runtime interpreter is still starting.
    before = runs[FAILURES[0]]
    if Step.objects.filter(execution_id=before.pk).exists():
        raise RuntimeError("a step started before the kill: raise --slow-start-s")
    pool, _ = _pids(before)
    failed_at[FAILURES[0]] = timezone.now()
    os.kill(pool, signal.SIGKILL)
    # Mid-step: once the run's first step is recorded.
    mid = runs[FAILURES[1]]
    _wait(lambda: Step.objects.filter(execution_id=mid.pk).exists(), 120, "first step started")
    pool, _ = _pids(mid)
    failed_at[FAILURES[1]] = timezone.now()
    os.kill(pool, signal.SIGKILL)

    samples = []
    for failure, execution in runs.items():
        done = _wait(
            lambda e=execution: Execution.objects.filter(pk=e.pk, status=ExecutionStatus.SYSTEM_ERROR).first(),
            timeout,
            f"{failure} ({mode}): system_error",
        )
        written = (
            Transition.objects.filter(execution_id=done.pk, to_status=ExecutionStatus.SYSTEM_ERROR)
            .order_by("at")
            .first()
        )
        moment = failed_at.get(failure) or done.started_at + timedelta(seconds=time_limit)
        sign_of_life = done.heartbeat_at or done.started_at
        samples.append(
            Sample(
                failure=failure,
                mode=mode,
                code=done.error_code,
                actor=written.actor,
                # The limit counts from the task's acceptance, a few ms before the claim's
                # started_at: a time-limit figure may read a little below zero.
                from_failure_s=(written.at - moment).total_seconds(),
                from_heartbeat_s=(written.at - sign_of_life).total_seconds(),
            )
        )
    return samples


def measure(mode: str, rounds: int, slow_start_s: float, time_limit: float) -> list[Sample]:
    from tenancy.models import Organization
    from workflows.models import Workflow

    env = {
        **DEFAULTS,
        "CONVEYOR_FAILURE_HOOKS": MODES[mode],
        "CONVEYOR_PYTHON_CALLABLES": CALLABLES,
        **slow_start_python(Path(tempfile.mkdtemp(prefix="conveyor-bench-")), slow_start_s),
        "CONVEYOR_LOG_LEVEL": "WARNING",
    }
    from django.conf import settings

    settings.PYTHON_CALLABLE_ALLOWLIST = CALLABLES.split(",")  # the workers get the same list
    org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    workflow = Workflow.objects.create(
        organization=org, name=f"bench-detection-{mode}-{time.time_ns()}", definition=sleeping(2.0, steps=100)
    )
    samples: list[Sample] = []
    with BenchPipeline(workers=0, queues=("runs", "maintenance"), extra_env=env) as pipeline:
        pipeline.processes.start_worker(
            queues="runs", concurrency=len(FAILURES), extra_args=[f"--time-limit={time_limit:g}"]
        ).pool_pids(expected=len(FAILURES))
        pipeline.processes.start_worker(queues="maintenance", concurrency=1)
        pipeline.processes.start_beat()
        # The reaper may need a stale threshold plus a sweep interval, then some.
        timeout = 60 + 60 + 60 + time_limit
        for number in range(rounds):
            batch = one_round(workflow, mode, time_limit, timeout)
            samples.extend(batch)
            print(
                f"  {mode} round {number + 1}: "
                + ", ".join(f"{s.failure}: {s.code} by {s.actor} in {s.from_failure_s:.2f}s" for s in batch),
                flush=True,
            )
    return samples


def _p50_max(values: list[float]) -> str:
    return f"p50 {statistics.median(values):7.2f} s  max {max(values):7.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="failures of each kind per mode")
    parser.add_argument("--modes", default="hook,reaper-only", help="comma-separated: hook, reaper-only")
    parser.add_argument("--slow-start-s", type=float, default=6.0, help="runtime interpreter start delay")
    parser.add_argument("--time-limit", type=float, default=20.0, help="the worker's --time-limit")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode {', '.join(unknown)}; allowed: {', '.join(MODES)}")
    if args.time_limit <= args.slow_start_s + 5:
        parser.error("--time-limit must leave the mid-step kill time after --slow-start-s (at least 5 s more)")

    call_command("migrate", verbosity=0)
    samples = [s for mode in modes for s in measure(mode, args.rounds, args.slow_start_s, args.time_limit)]

    print(
        f"\ndetection latency, default thresholds (heartbeat {DEFAULTS['CONVEYOR_HEARTBEAT_INTERVAL_S']} s, "
        f"stale {DEFAULTS['CONVEYOR_STALE_AFTER_S']} s, sweep {DEFAULTS['CONVEYOR_REAPER_INTERVAL_S']} s), "
        f"prefork x{len(FAILURES)}, isolated runtime, {args.rounds} rounds"
    )
    for failure in FAILURES:
        for mode in modes:
            rows = [s for s in samples if s.failure == failure and s.mode == mode]
            written = ", ".join(sorted({f"{s.code} by {s.actor}" for s in rows}))
            print(
                f"  {failure:32} {mode:12} from failure {_p50_max([s.from_failure_s for s in rows])}"
                f"   from last heartbeat {_p50_max([s.from_heartbeat_s for s in rows])}   [{written}]"
            )


if __name__ == "__main__":
    main()
