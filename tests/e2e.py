"""Shared pieces of the end-to-end pipeline tests: a worker started the way production
starts it (with the test thresholds), workflows that exercise each failure point, and
waits that read the database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.db import close_old_connections
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from executions.models import Execution, Transition
from failures.statuses import TERMINAL
from tests.factories import make_workflow

CALLABLES = ",".join(
    [
        "workflows.actions.examples.add_numbers",
        "workflows.actions.examples.echo",
        "workflows.actions.examples.fail",
        "workflows.actions.examples.read_with_wrong_key",
        "workflows.actions.examples.query_missing_table",
        "tests.callables.allocate",
        "tests.callables.sleep",
        "tests.callables.spin",
    ]
)

NOOP = {"steps": [{"id": "noop", "action": "transform", "config": {"output": {"ok": True}}}]}


def sleeping(seconds: float, *, steps: int = 1) -> dict:
    return {
        "steps": [
            {
                "id": f"sleep{i}",
                "action": "python",
                "config": {"callable": "tests.callables.sleep", "kwargs": {"seconds": seconds}},
            }
            for i in range(steps)
        ]
    }


def calling(dotted: str, **kwargs) -> dict:
    return {"steps": [{"id": "call", "action": "python", "config": {"callable": dotted, "kwargs": kwargs}}]}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Platform:
    """Every process of the platform, as production runs them: a runs worker, a
    maintenance worker, beat and the web server; each worker serves its exporter (metrics
    and probes) on a port of its own."""

    def __init__(self, pipeline: Pipeline, env: dict):
        self.pipeline = pipeline
        self.ports = {"runs": free_port(), "maintenance": free_port(), "web": free_port()}
        self.runs = pipeline.worker(queues="runs", CONVEYOR_WORKER_METRICS_PORT=self.ports["runs"], **env)
        self.maintenance = pipeline.worker(
            queues="maintenance", CONVEYOR_WORKER_METRICS_PORT=self.ports["maintenance"], **env
        )
        self.beat = pipeline.processes.start_beat(
            {"PROMETHEUS_MULTIPROC_DIR": str(pipeline.metrics_dir), **{k: str(v) for k, v in env.items()}}
        )
        self.web = pipeline.processes.start_web(
            {"PROMETHEUS_MULTIPROC_DIR": str(pipeline.metrics_dir), **{k: str(v) for k, v in env.items()}},
            port=self.ports["web"],
        )
        self.processes = {"runs": self.runs, "maintenance": self.maintenance, "beat": self.beat, "web": self.web}
        self.pids = {name: process.pid for name, process in self.processes.items()}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    def all_running_unrestarted(self) -> bool:
        return all(p.is_running() and p.pid == self.pids[name] for name, p in self.processes.items())

    def trigger(self, workflow, token: str, timeout: float = 30.0) -> tuple[int, dict]:
        """POST /api/workflows/<id>/runs/ to the web process: (status, JSON body)."""
        import json
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            f"{self.url}/api/workflows/{workflow.pk}/runs/",
            data=b"{}",
            method="POST",
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def probe(self, worker: str, path: str = "/healthz") -> tuple[int, dict]:
        import json
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[worker]}{path}", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


class Pipeline:
    """A test's view of the platform: its workers, its metrics directory, its waits."""

    def __init__(self, celery_processes, worker_env: dict, metrics_dir: Path, settings):
        self.processes = celery_processes
        self.env = dict(worker_env)
        self.metrics_dir = metrics_dir
        self.settings = settings

    def worker(self, *, queues: str = "runs", concurrency: int = 1, extra_args: tuple[str, ...] = (), **env) -> object:
        merged = {
            "CONVEYOR_PYTHON_CALLABLES": CALLABLES,
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            "CONVEYOR_LOG_LEVEL": "INFO",
            **{k: str(v) for k, v in env.items()},
        }
        return self.processes.start_worker(merged, queues=queues, concurrency=concurrency, extra_args=extra_args)

    def reaper(self, **env):
        """The maintenance worker and beat, as production runs them."""
        worker = self.worker(queues="maintenance", **env)
        beat = self.processes.start_beat(
            {"PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir), **{k: str(v) for k, v in env.items()}}
        )
        return worker, beat

    def platform(self, **env) -> Platform:
        return Platform(self, env)

    def workflow(self, definition: dict | None = None, **fields):
        return make_workflow(definition=definition or NOOP, **fields)

    def metric(self, name: str, **labels) -> float:
        """Sum of a counter's samples across every worker process (multiprocess files)."""
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.metrics_dir))
        total = 0.0
        for family in registry.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total


def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        close_old_connections()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def wait_status(execution_id, statuses=TERMINAL, timeout: float = 30.0) -> Execution:
    def reached():
        execution = Execution.objects.filter(pk=execution_id).first()
        return execution if execution and execution.status in statuses else None

    try:
        return wait_for(reached, timeout)
    except AssertionError:
        execution = Execution.objects.get(pk=execution_id)
        raise AssertionError(f"run still {execution.status} after {timeout}s ({execution.error_message})") from None


def moves(execution) -> list[str]:
    return list(
        Transition.objects.filter(execution_id=execution.pk).order_by("at", "id").values_list("move", flat=True)
    )


@pytest.fixture
def pipeline(celery_processes, worker_env, tmp_path, settings):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    settings.PYTHON_CALLABLE_ALLOWLIST = CALLABLES.split(",")
    return Pipeline(celery_processes, worker_env, metrics_dir, settings)


def supervisor_pids(execution_id) -> tuple[int, int | None]:
    """(pool process pid, runtime child pid or None) recorded on the run by its worker."""
    import re

    worker = Execution.objects.get(pk=execution_id).worker
    pool = re.search(r"pid=(\d+)", worker)
    runtime = re.search(r"runtime=(\d+)", worker)
    assert pool, f"no pid recorded in {worker!r}"
    return int(pool.group(1)), int(runtime.group(1)) if runtime else None


def running_with_step(execution_id):
    from executions.models import Step

    execution = Execution.objects.filter(pk=execution_id, status="running").first()
    if execution and "runtime=" in execution.worker and Step.objects.filter(execution_id=execution_id).exists():
        return execution
    return None


def slow_start_python(directory: Path, seconds: float) -> dict:
    """Worker settings for an isolated runtime that takes `seconds` to start, so a test can
    act while the run is claimed but before its first step: a fresh interpreter per run
    (spawn: with the fork server the child is ready at once) behind a wrapper that sleeps
    first. The wrapper holds its values itself: the runtime's environment is sealed, so no
    CONVEYOR_* variable reaches it."""
    import sys

    wrapper = directory / "slow-start-python"
    wrapper.write_text(f'#!/bin/sh\nsleep {seconds}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return {"CONVEYOR_ISOLATED_START": "spawn", "CONVEYOR_RUNTIME_PYTHON": str(wrapper)}


def process_gone(pid: int) -> bool:
    from tests.harness.processes import is_alive, proc_stat

    stat = proc_stat(pid)
    return stat is None or not is_alive(stat)
