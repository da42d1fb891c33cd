"""Pipeline throughput: N no-op runs through the whole platform against N bare Celery
no-op tasks on the same broker, worker and concurrency, in the same run.

    .venv/bin/python bench/bench_pipeline.py            # N=300, prefork x2
    .venv/bin/python bench/bench_pipeline.py -n 500 --isolated-n 500 --spawn-n 60

The isolated runtime is measured forked by the fork server (the default), then, after the
worker is restarted with CONVEYOR_ISOLATED_START=spawn, with a new interpreter per run
(the path before docs/decisions/0013, minus its django.setup()).

Both phases publish from the same pool of producer threads (a platform's producers are
many: web processes, beat), paced by one poller.

A platform run is: enqueue (INSERT + transition log + signed SendMessage) → worker
(verify, claim CAS, step row, engine, completion CAS, transition log) → `success` row.
Runs are published with a window (at most W not yet finished), like the baseline, so
moto's queue stays shallow (it slows down as a queue grows, DESIGN.md §9).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
BENCH_DATABASE = os.environ.get("CONVEYOR_BENCH_DATABASE", "conveyor_bench")
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
os.environ.setdefault("CONVEYOR_LOG_LEVEL", "WARNING")  # the producer's log lines are not what is measured


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


def paced(label: str, n: int, publish, done, *, window: int, producers: int, timeout: float = 600) -> Throughput:
    """Publish `n` items from `producers` threads, never more than `window` ahead of what
    the workers finished (`done()`, read by one poller so the reading costs the same in
    both phases), and time until all are done."""
    from django.db import connection

    lock = threading.Lock()
    state = {"sent": 0, "done": 0, "publishing": 0.0}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            state["done"] = done()
            time.sleep(0.02)
        connection.close()

    def produce() -> None:
        try:
            while True:
                with lock:
                    if state["sent"] >= n:
                        return
                    state["sent"] += 1
                    mine = state["sent"]
                while mine - state["done"] > window:
                    time.sleep(0.002)
                t0 = time.monotonic()
                publish()
                with lock:
                    state["publishing"] += time.monotonic() - t0
        finally:
            connection.close()

    started = time.monotonic()
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    threads = [threading.Thread(target=produce) for _ in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = started + timeout
    while state["done"] < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: only {state['done']}/{n} done in {timeout}s")
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    stop.set()
    poller.join()
    return Throughput(label=label, tasks=n, seconds=elapsed, publish_seconds=state["publishing"])


def measure_bare(pipeline: BenchPipeline, n: int, window: int, producers: int) -> Throughput:
    from tests.harness.noop_tasks import counted

    before = counted(pipeline.counter_file)
    return paced(
        "bare Celery no-op tasks",
        n,
        lambda: pipeline.app.send_task("bench.noop"),
        lambda: counted(pipeline.counter_file) - before,
        window=window,
        producers=producers,
    )


def measure_runs(pipeline: BenchPipeline, n: int, runtime: str, window: int, producers: int) -> Throughput:
    from executions.enqueue import enqueue
    from executions.models import Execution
    from failures.statuses import TERMINAL
    from tenancy.models import Organization
    from workflows.models import Workflow

    org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    workflow = Workflow.objects.create(organization=org, name=f"bench-{runtime}", definition=NOOP, runtime=runtime)
    result = paced(
        f"platform runs, {runtime} runtime",
        n,
        lambda: enqueue(workflow, trigger_type="manual"),
        lambda: Execution.objects.filter(workflow=workflow, status__in=TERMINAL).count(),
        window=window,
        producers=producers,
    )
    failed = Execution.objects.filter(workflow=workflow).exclude(status="success").count()
    if failed:
        raise RuntimeError(f"{failed} of {n} {runtime} runs did not succeed")
    return result


def start_profile(pipeline: BenchPipeline, path: Path) -> subprocess.Popen:
    """py-spy sampling the worker's whole process tree (main, pool processes, fork
    servers, children) in raw (collapsed stacks) form, until stopped."""
    worker = pipeline.processes.started[-1]
    py_spy = Path(sys.executable).parent / "py-spy"
    # Without --idle: only samples of threads on the CPU, so the shares are CPU time.
    command = [str(py_spy), "record", "--pid", str(worker.pid), "--subprocesses", "--nonblocking"]
    command += ["--rate", "40", "--format", "raw", "--output", str(path)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(profiler: subprocess.Popen, path: Path, top: int = 12) -> None:
    """Stop py-spy and print where the CPU samples went: by process (the innermost
    `process` frame: worker main or pool process, fork server, forked child) and the
    busiest leaf frames."""
    profiler.send_signal(signal.SIGINT)
    profiler.wait(timeout=60)
    kinds: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for raw in path.read_text().splitlines():
        stack, _, count = raw.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        code = [f for f in frames if not f.startswith(("process ", "thread "))]
        depth = len(processes)
        if "pipeline.forkserver" in processes[-1]:
            # The server's own loop, or a child it forked (the same command line, one deeper).
            in_child = any("_become_child" in f for f in code)
            kind = "isolated child (forked)" if in_child else "fork server"
        elif depth <= 1:
            kind = "worker main process"
        else:
            kind = "pool process (supervisor / inline runs)"
        kinds[kind] += int(count)
        if code:
            leaves[code[-1]] += int(count)
    total = sum(kinds.values()) or 1
    print(f"\n  py-spy CPU samples of the worker tree during the isolated phase ({path}, {total} samples):")
    for kind, count in kinds.most_common():
        print(f"    {100 * count / total:5.1f}%  {kind}")
    print("    busiest leaf frames:")
    for frame, count in leaves.most_common(top):
        print(f"    {100 * count / total:5.1f}%  {frame[:110]}")


def restart_worker(pipeline: BenchPipeline, concurrency: int, **env: str) -> None:
    """Replace the bench's worker by one with `env` on top (same queues, same concurrency)."""
    for process in pipeline.processes.started:
        process.stop()
    worker = pipeline.processes.start_worker({**pipeline.env, **env}, queues=pipeline.queues, concurrency=concurrency)
    worker.pool_pids(expected=concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="no-op tasks and inline runs")
    parser.add_argument("--isolated-n", type=int, default=300, help="isolated runs, forked by the fork server")
    parser.add_argument(
        "--spawn-n", type=int, default=40, help="isolated runs with CONVEYOR_ISOLATED_START=spawn (0: skip)"
    )
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--producers", type=int, default=4, help="publishing threads (web processes, beat...)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the isolated phase into this file")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    env = {"CONVEYOR_LOG_LEVEL": "WARNING", "CONVEYOR_SQS_POLLING_INTERVAL": "0"}
    spawned = None
    with BenchPipeline(concurrency=args.concurrency, extra_env=env) as pipeline:
        measure_bare(pipeline, 20, args.window, args.producers)  # warm-up
        baseline = measure_bare(pipeline, args.n, args.window, args.producers)
        inline = measure_runs(pipeline, args.n, "inline", args.window, args.producers)
        profiler = start_profile(pipeline, args.profile) if args.profile else None
        isolated = measure_runs(pipeline, args.isolated_n, "isolated", args.window, args.producers)
        if profiler is not None:
            stop_profile(profiler, args.profile)
        if args.spawn_n:
            restart_worker(pipeline, args.concurrency, CONVEYOR_ISOLATED_START="spawn")
            spawned = measure_runs(pipeline, args.spawn_n, "isolated", args.window, args.producers)
            spawned.label = "platform runs, isolated runtime, spawn (a new interpreter per run)"

    print(
        f"\nprefork x{args.concurrency}, moto SQS, PostgreSQL, window {args.window}, {args.producers} producer threads"
    )
    for result in (baseline, inline, isolated, spawned):
        if result is not None:
            print(f"  {result.summary()}")
    print(f"  cost ratio inline/bare          = {baseline.rate / inline.rate:.2f}x  (target <= 1.25x)")
    print(f"  cost ratio isolated/bare        = {baseline.rate / isolated.rate:.2f}x")
    print(f"  throughput isolated/inline      = {isolated.rate / inline.rate:.2f}x  (target >= 0.7x)")
    if spawned is not None:
        print(f"  throughput spawn/inline         = {spawned.rate / inline.rate:.2f}x")
        print(f"  throughput fork server/spawn    = {isolated.rate / spawned.rate:.2f}x")


if __name__ == "__main__":
    main()
