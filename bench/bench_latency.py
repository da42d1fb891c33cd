"""Trigger → success latency through the API, both runtimes, on the embedded platform
(SQLite, `manage.py platform`) and on PostgreSQL (moto, a prefork x2 worker, a web
process); and the spawn time of an isolated child, fork server against a new interpreter.

    .venv/bin/python bench/bench_latency.py                 # 50 runs per configuration
    .venv/bin/python bench/bench_latency.py -n 100 --only postgres

A run is measured as a user sees it: POST /api/workflows/<id>/runs/, then
GET /api/runs/<id>/wait/ until it answers terminal; one run at a time, after 3 warm-up
runs. The isolated runtime is measured twice: forked by the fork server (the default) and
with CONVEYOR_ISOLATED_START=spawn (a new interpreter per run, the path before the fork
server, minus its django.setup()). The spawn section times, in this process, how long a
child takes from "start it" to its `ready` message and to its result, for the fork
server, for spawn, and for the old child (a new interpreter running django.setup(),
started the way main did before docs/decisions/0013).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
BENCH_DATABASE = os.environ.get("CONVEYOR_BENCH_DATABASE", "conveyor_bench")
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
os.environ.setdefault("CONVEYOR_LOG_LEVEL", "WARNING")

from bench.bench_pipeline import _ensure_database  # noqa: E402  (creates the bench database, sets Django up)
from failures.statuses import TERMINAL  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOOP = {"steps": [{"id": "noop", "action": "transform", "config": {"output": {"ok": True}}}]}
RUNTIMES = ("inline", "isolated")
# The trigger endpoint's per-user rate limit (60/minute) would answer 429 mid-benchmark.
ENV = {"CONVEYOR_LOG_LEVEL": "WARNING", "CONVEYOR_TRIGGER_RATE": "100000/minute"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(label: str, samples: list[float]) -> dict:
    return {
        "label": label,
        "n": len(samples),
        "p50_ms": percentile(samples, 0.5) * 1000,
        "p95_ms": percentile(samples, 0.95) * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
    }


def line(result: dict) -> str:
    return (
        f"  {result['label']:<44} n={result['n']:<4} p50 {result['p50_ms']:7.1f} ms   "
        f"p95 {result['p95_ms']:7.1f} ms   mean {result['mean_ms']:7.1f} ms"
    )


# --- through the API --------------------------------------------------------------------
class Api:
    def __init__(self, base: str, token: str):
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 60.0) -> dict:
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def wait_up(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call("GET", "/api/workflows/")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def one_run(self, workflow_id: int) -> tuple[float, float]:
        """(trigger → terminal answer of the wait endpoint, created → finished as stored)."""
        started = time.monotonic()
        run_id = self.call("POST", f"/api/workflows/{workflow_id}/runs/", {})["run_id"]
        detail = self.call("GET", f"/api/runs/{run_id}/wait/?timeout=30")
        while detail["status"] not in TERMINAL:
            detail = self.call("GET", f"/api/runs/{run_id}/wait/?timeout=30")
        elapsed = time.monotonic() - started
        if detail["status"] != "success":
            raise RuntimeError(f"run {run_id} ended {detail['status']}: {detail.get('error')}")
        from datetime import datetime

        stored = (
            datetime.fromisoformat(detail["finished_at"]) - datetime.fromisoformat(detail["created_at"])
        ).total_seconds()
        return elapsed, stored

    def measure(self, label: str, workflow_id: int, n: int) -> tuple[dict, dict]:
        for _ in range(3):
            self.one_run(workflow_id)
        api, stored = [], []
        for _ in range(n):
            a, s = self.one_run(workflow_id)
            api.append(a)
            stored.append(s)
        return summary(f"{label} (API)", api), summary(f"{label} (created→finished)", stored)


def _print_ratios(results: dict[str, tuple[dict, dict]]) -> None:
    inline = results["inline"][0]["p50_ms"]
    for label, (api, _) in results.items():
        if label != "inline":
            print(f"  p50 {label}/inline = {api['p50_ms'] / inline:.2f}x  (target <= 2x)")


def bench_postgres(n: int) -> dict[str, tuple[dict, dict]]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from bench._common import BenchPipeline
    from tenancy.models import Member, Organization
    from tests.e2e import free_port
    from workflows.models import Workflow

    call_command("migrate", verbosity=0)
    org, _ = Organization.objects.get_or_create(slug="bench-latency", defaults={"name": "Bench latency"})
    user, created = get_user_model().objects.get_or_create(username="bench-latency")
    if created:
        Member.objects.create(user=user, organization=org)
    token, _ = Token.objects.get_or_create(user=user)
    workflows = {
        rt: Workflow.objects.create(organization=org, name=f"latency-{rt}", definition=NOOP, runtime=rt)
        for rt in RUNTIMES
    }
    results: dict[str, tuple[dict, dict]] = {}
    env = {**ENV, "CONVEYOR_SQS_POLLING_INTERVAL": "0"}
    for start in ("forkserver", "spawn"):
        with BenchPipeline(concurrency=2, extra_env={**env, "CONVEYOR_ISOLATED_START": start}) as pipeline:
            port = free_port()
            pipeline.processes.start_web(port=port)
            api = Api(f"http://127.0.0.1:{port}", token.key)
            api.wait_up()
            if start == "forkserver":
                results["inline"] = api.measure("PostgreSQL inline", workflows["inline"].pk, n)
                results["isolated"] = api.measure("PostgreSQL isolated (fork server)", workflows["isolated"].pk, n)
            else:
                results["isolated, spawn"] = api.measure("PostgreSQL isolated (spawn)", workflows["isolated"].pk, n)
    return results


SETUP_SQLITE = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from tenancy.models import Member, Organization
from workflows.models import Workflow
org, _ = Organization.objects.get_or_create(slug="bench-latency", defaults={"name": "Bench latency"})
user, created = get_user_model().objects.get_or_create(username="bench-latency")
if created:
    Member.objects.create(user=user, organization=org)
token, _ = Token.objects.get_or_create(user=user)
noop = %r
ids = {
    rt: Workflow.objects.get_or_create(
        organization=org, name="latency-" + rt, defaults={"definition": noop, "runtime": rt}
    )[0].pk
    for rt in %r
}
print("BENCH" + json.dumps({"token": token.key, "workflows": ids}))
"""


def bench_sqlite(n: int) -> dict[str, tuple[dict, dict]]:
    from tests.e2e import free_port

    var = tempfile.mkdtemp(prefix="conveyor-bench-embedded-")
    base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    base_env.update({"CONVEYOR_EMBEDDED": "1", "CONVEYOR_VAR_DIR": var, **ENV})
    results: dict[str, tuple[dict, dict]] = {}
    for start in ("forkserver", "spawn"):
        env = {**base_env, "CONVEYOR_ISOLATED_START": start}
        port, sqs_port = free_port(), free_port()
        log = open(Path(var) / f"platform-{start}.log", "wb")
        platform = subprocess.Popen(
            [sys.executable, "manage.py", "platform", "--port", str(port), "--sqs-port", str(sqs_port), "--no-example"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 180
            while not (Path(var) / "conveyor.sqlite3").exists() and time.monotonic() < deadline:
                time.sleep(0.5)
            setup = subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", SETUP_SQLITE % (NOOP, RUNTIMES)],
                cwd=PROJECT_ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            ids = json.loads(setup.stdout.split("BENCH", 1)[1])
            api = Api(f"http://127.0.0.1:{port}", ids["token"])
            api.wait_up()
            time.sleep(5)  # the workers come up after the web server
            if start == "forkserver":
                results["inline"] = api.measure("SQLite inline", ids["workflows"]["inline"], n)
                results["isolated"] = api.measure("SQLite isolated (fork server)", ids["workflows"]["isolated"], n)
            else:
                results["isolated, spawn"] = api.measure("SQLite isolated (spawn)", ids["workflows"]["isolated"], n)
        finally:
            platform.send_signal(2)  # Ctrl-C: the platform stops its processes
            try:
                platform.wait(timeout=60)
            except subprocess.TimeoutExpired:
                platform.kill()
            log.close()
    return results


# --- spawn time -------------------------------------------------------------------------
def _child_times(start: str, n: int) -> tuple[list[float], list[float]]:
    """(start → ready, start → result) of `n` children started the `start` way."""
    from django.test import override_settings

    from pipeline.runtimes import _ChildChannel, start_child
    from workflows.runtime_settings import settings as runtime_settings

    payload = {
        "definition": NOOP,
        "context": {"execution_id": "bench", "workflow_id": 1, "organization_id": 1, "input": {}, "secrets": {}},
        "deadline_seconds": 60,
        "settings": runtime_settings.snapshot(),
    }
    ready_times, result_times = [], []
    with override_settings(RUNTIME_ISOLATED_START=start):
        for i in range(n + 2):
            t0 = time.monotonic()
            child = start_child()
            channel = _ChildChannel(child)
            channel.send(payload)
            ready = done = None
            while done is None:
                for message in channel.receive(timeout=30):
                    if message["type"] == "ready":
                        ready = time.monotonic() - t0
                    elif message["type"] == "step_start":
                        channel.send({"type": "step_ack", "ok": True})
                    elif message["type"] in ("result", "failed", "claim_lost"):
                        done = time.monotonic() - t0
                if channel.closed and done is None:
                    raise RuntimeError(f"child ended without a result: {child.stderr.read()!r}")
            child.release()
            if i >= 2:  # the first two warm the fork server and the page cache
                ready_times.append(ready or done)
                result_times.append(done)
    return ready_times, result_times


OLD_CHILD = (
    "import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); "
    "import django; django.setup(); import workflows.engine, failures.classifier; sys.stdout.write('ready')"
)


def _old_child_times(n: int) -> list[float]:
    """The child as main started it: a new interpreter with the worker's environment
    that sets Django up before it can run anything."""
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", OLD_CHILD], cwd=PROJECT_ROOT, check=True, capture_output=True)
        times.append(time.monotonic() - t0)
    return times


def bench_spawn(n: int) -> list[dict]:
    fork_ready, fork_done = _child_times("forkserver", n)
    spawn_ready, spawn_done = _child_times("spawn", max(10, n // 2))
    old = _old_child_times(max(10, n // 4))
    return [
        summary("fork server: start → ready", fork_ready),
        summary("fork server: start → result (no-op run)", fork_done),
        summary("spawn (sealed): start → ready", spawn_ready),
        summary("spawn (sealed): start → result", spawn_done),
        summary("old child (interpreter + django.setup)", old),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="measured runs per configuration")
    parser.add_argument("--only", choices=["postgres", "sqlite", "spawn"], default=None)
    args = parser.parse_args()
    _ensure_database()
    # Each section is printed as soon as it is measured (a later one may fail).
    if args.only in (None, "spawn"):
        show("Spawn time of an isolated child (this process, no queue, no database)", bench_spawn(args.n), None)
    if args.only in (None, "sqlite"):
        sqlite = bench_sqlite(args.n)
        show("Embedded platform (SQLite): trigger → success", [r for p in sqlite.values() for r in p], sqlite)
    if args.only in (None, "postgres"):
        postgres = bench_postgres(args.n)
        show("PostgreSQL, prefork x2: trigger → success", [r for p in postgres.values() for r in p], postgres)


def show(title: str, results: list[dict], pairs: dict[str, tuple[dict, dict]] | None) -> None:
    print(f"\n{title}")
    for result in results:
        print(line(result))
    if pairs:
        _print_ratios(pairs)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
