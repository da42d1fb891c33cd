"""Shared helpers for the benchmarks (see bench/README.md).

A benchmark script does::

    from bench._common import BenchPipeline

    with BenchPipeline(concurrency=2, pool="prefork", database_url=...) as pipeline:
        baseline = pipeline.measure_noop(500)            # bare Celery no-op tasks
        ...                                              # then the real pipeline, same worker
    print(baseline.summary())

``BenchPipeline`` starts moto's SQS server (its own process), fresh queues under a unique
prefix, real ``celery worker`` process(es) and points this process's Celery app at the same
queues. Tasks are counted through a side channel that works whatever the pool: the worker
gets ``CONVEYOR_BENCH_COUNTER_FILE`` and ``bench.noop`` appends one byte to it per task,
so the file's size is the number of tasks executed; the SQS queue is also checked empty
at the end. Publishing and consuming overlap, as in production (and as moto needs: it
slows down as a queue grows, DESIGN.md §9).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The suite's development keys and moto's credentials (a benchmark is a test run).
import django  # noqa: E402

import tests.testenv  # noqa: E402, F401

django.setup()

from tests.harness.moto_server import MotoServer  # noqa: E402
from tests.harness.noop_tasks import COUNTER_FILE_ENV, counted  # noqa: E402
from tests.harness.processes import (  # noqa: E402
    CeleryProcesses,
    build_worker_env,
    settings_for_worker_env,
    wait_until,
)
from tests.harness.sqs import SqsQueues, new_prefix  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"


@dataclass
class Throughput:
    label: str
    tasks: int
    seconds: float  # first publish -> last task executed
    publish_seconds: float  # time spent publishing

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds if self.seconds else float("inf")

    def summary(self) -> str:
        return (
            f"{self.label}: {self.tasks} tasks in {self.seconds:.2f}s = {self.rate:.1f} tasks/s "
            f"(publishing took {self.publish_seconds:.2f}s)"
        )


class BenchPipeline:
    """moto + fresh queues + worker process(es) + this process as the producer."""

    def __init__(
        self,
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        workers: int = 1,
        database_url: str | None = None,
        prefix: str | None = None,
        queues: tuple[str, ...] = ("runs",),
        extra_env: dict[str, str] | None = None,
        log_dir: str | os.PathLike | None = None,
        visibility_timeout: int = 1800,
        polling_interval: float | None = None,
    ):
        self.concurrency = concurrency
        self.pool = pool
        self.workers = workers
        self.database_url = database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        self.prefix = prefix or new_prefix()
        self.queues = queues
        self.extra_env = dict(extra_env or {})
        if polling_interval is not None:  # default: the tests' 0.1 s (tests/harness/processes.py)
            self.extra_env["CONVEYOR_SQS_POLLING_INTERVAL"] = str(polling_interval)
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="conveyor-bench-"))
        self.visibility_timeout = visibility_timeout
        self.counter_file = self.log_dir / "noop-counter"
        self.moto: MotoServer | None = None
        self.sqs: SqsQueues | None = None
        self.env: dict[str, str] = {}
        self.processes: CeleryProcesses | None = None
        self.app = None
        self._stack = ExitStack()

    def __enter__(self) -> BenchPipeline:
        try:
            self.moto = self._stack.enter_context(MotoServer(log_path=self.log_dir / "moto.log"))
            self.sqs = SqsQueues(self.moto.url, self.prefix, visibility_timeout=self.visibility_timeout).create()
            self.env = build_worker_env(
                database_url=self.database_url,
                sqs_endpoint_url=self.moto.url,
                queue_prefix=self.prefix,
                visibility_timeout=self.visibility_timeout,
                extra={COUNTER_FILE_ENV: str(self.counter_file), **self.extra_env},
            )
            self.app = self._stack.enter_context(settings_for_worker_env(self.env))
            self.processes = CeleryProcesses(self.log_dir, default_env=self.env)
            self._stack.callback(self.processes.stop_all)
            for _ in range(self.workers):
                worker = self.processes.start_worker(queues=self.queues, concurrency=self.concurrency, pool=self.pool)
                if pool_needs_children(self.pool):
                    worker.pool_pids(expected=self.concurrency)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    # -- measuring -----------------------------------------------------------------
    def measure_noop(
        self, n: int = 500, *, window: int | None = 20, timeout: float = 300.0, label: str | None = None
    ) -> Throughput:
        """Publish *n* bare ``bench.noop`` tasks and time until the worker executed them all.

        With *window*, publishing pauses while more than *window* tasks are published but not
        yet executed: the queue stays shallow, so this measures the pipeline rather than
        moto's slowdown on a deep queue (DESIGN.md §9). ``window=None`` publishes everything
        at once (a burst).
        """
        before = counted(self.counter_file)
        done = lambda: counted(self.counter_file) - before  # noqa: E731
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        publishing = 0.0
        for sent in range(n):
            if window is not None:
                while sent - done() >= window:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"only {done()}/{n} noop tasks ran in {timeout}s; logs in {self.log_dir}")
                    time.sleep(0.002)
            t0 = time.monotonic()
            self.app.send_task("bench.noop")
            publishing += time.monotonic() - t0
        remaining_time = max(0.0, deadline - time.monotonic())
        if not wait_until(lambda: done() >= n, timeout=remaining_time, interval=0.01):
            raise TimeoutError(f"only {done()}/{n} noop tasks ran in {timeout}s; logs in {self.log_dir}")
        finished = time.monotonic()
        remaining = self.sqs.wait_for_count("runs", 0, timeout=10)
        if remaining:
            raise RuntimeError(f"{remaining} messages left in {self.prefix}runs after the noop run")
        return Throughput(
            label=label or self._label(window),
            tasks=n,
            seconds=finished - started,
            publish_seconds=publishing,
        )

    def _label(self, window: int | None) -> str:
        polling = self.env.get("CONVEYOR_SQS_POLLING_INTERVAL")
        return f"noop {self.pool}x{self.concurrency} window={window} polling_interval={polling}"

    def time_until(self, predicate, *, timeout: float = 300.0, interval: float = 0.05) -> float:
        """Seconds until *predicate()* is true (for the lead's pipeline benchmark: runs finished)."""
        started = time.monotonic()
        if not wait_until(predicate, timeout=timeout, interval=interval):
            raise TimeoutError(f"condition not met in {timeout}s; logs in {self.log_dir}")
        return time.monotonic() - started


def pool_needs_children(pool: str) -> bool:
    return pool in ("prefork", "processes")


def measure_noop_throughput(n: int = 500, *, window: int | None = 20, **pipeline_kwargs) -> Throughput:
    """One-shot: start everything, warm up, measure *n* no-op tasks, stop everything."""
    with BenchPipeline(**pipeline_kwargs) as pipeline:
        pipeline.measure_noop(min(20, n), window=window, label="warm-up")
        return pipeline.measure_noop(n, window=window)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Baseline: bare Celery no-op tasks through moto SQS.")
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--window", type=int, default=20, help="max tasks published but not executed; 0: burst")
    parser.add_argument("--polling-interval", type=float, default=None, help="kombu polling_interval (default 0.1)")
    args = parser.parse_args()
    result = measure_noop_throughput(
        args.n,
        window=args.window or None,
        concurrency=args.concurrency,
        pool=args.pool,
        polling_interval=args.polling_interval,
    )
    print(result.summary())
