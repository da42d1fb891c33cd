"""Pipeline throughput: N no-op runs through the whole platform against N bare Celery
no-op tasks on the same broker, worker and concurrency, in the same run.

    .venv/bin/python bench/bench_pipeline.py            # N=300, prefork x2
    .venv/bin/python bench/bench_pipeline.py -n 500 --isolated-n 100

A platform run is: enqueue (INSERT + transition log + signed SendMessage) → worker
(verify, claim CAS, step row, engine, completion CAS, transition log) → `success` row.
Runs are published with a window (at most W not yet finished), like the baseline, so
moto's queue stays shallow (it slows down as a queue grows, DESIGN.md §9).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
BENCH_DATABASE = os.environ.get("CONVEYOR_BENCH_DATABASE", "conveyor_bench")
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}"


def _ensure_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')


_ensure_database()

from django.core.management import call_command  # noqa: E402

from bench._common import BenchPipeline, Throughput  # noqa: E402  (sets Django up)

NOOP = {"steps": [{"id": "noop", "action": "transform", "config": {"output": {"ok": True}}}]}


def measure_runs(pipeline: BenchPipeline, n: int, runtime: str, window: int) -> Throughput:
    from executions.models import Execution, Organization, Workflow
    from executions.statuses import TERMINAL
    from scheduler.enqueue import enqueue

    org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    workflow = Workflow.objects.create(organization=org, name=f"bench-{runtime}", definition=NOOP, runtime=runtime)

    def finished() -> int:
        return Execution.objects.filter(workflow=workflow, status__in=TERMINAL).count()

    started = time.monotonic()
    publishing = 0.0
    done = 0
    for sent in range(n):
        while sent - done >= window:
            time.sleep(0.02)  # the count query itself costs CPU on a 2-core machine
            done = finished()
        t0 = time.monotonic()
        enqueue(workflow, trigger_type="manual")
        publishing += time.monotonic() - t0
    pipeline.time_until(lambda: finished() >= n, timeout=600, interval=0.02)
    elapsed = time.monotonic() - started
    failed = Execution.objects.filter(workflow=workflow).exclude(status="success").count()
    if failed:
        raise RuntimeError(f"{failed} of {n} {runtime} runs did not succeed")
    return Throughput(label=f"platform runs, {runtime} runtime", tasks=n, seconds=elapsed, publish_seconds=publishing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="no-op tasks and inline runs")
    parser.add_argument("--isolated-n", type=int, default=60, help="isolated runs (a child process each)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--window", type=int, default=20)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    with BenchPipeline(
        concurrency=args.concurrency, extra_env={"CONVEYOR_LOG_LEVEL": "WARNING", "CONVEYOR_SQS_POLLING_INTERVAL": "0"}
    ) as pipeline:
        pipeline.measure_noop(20, window=args.window, label="warm-up")
        baseline = pipeline.measure_noop(args.n, window=args.window, label="bare Celery no-op tasks")
        inline = measure_runs(pipeline, args.n, "inline", args.window)
        isolated = measure_runs(pipeline, args.isolated_n, "isolated", args.window)

    print(f"\nprefork x{args.concurrency}, moto SQS, PostgreSQL, window {args.window}")
    for result in (baseline, inline, isolated):
        print(f"  {result.summary()}")
    print(f"  cost ratio inline/bare   = {baseline.rate / inline.rate:.2f}x  (target <= 1.5x)")
    print(f"  cost ratio isolated/bare = {baseline.rate / isolated.rate:.2f}x")


if __name__ == "__main__":
    main()
