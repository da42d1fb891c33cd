"""Real ``celery worker`` / ``celery beat`` / web server processes for end-to-end tests and
benchmarks.

Every process starts in its own session (process group), logs stdout+stderr to a file,
and is killed with its whole group (plus every descendant seen while it ran) by
``stop()``, so no test leaves processes behind, even after a SIGKILL of the main process
orphaned its pool children.

Process trees are read from ``/proc`` by devtools.procs (shared with the embedded
platform's supervisor): a pid is identified with its start time, so a reused pid is never
mistaken for ours, and a zombie counts as dead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

from devtools.procs import ProcStat, all_procs, descendants_of, is_alive, proc_stat

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOOP_TASKS_MODULE = "tests.harness.noop_tasks"

# --------------------------------------------------------------------------------------
# /proc helpers
# --------------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    return sorted(s.pid for s in all_procs() if s.ppid == pid and s.state != "Z")


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------------------


def database_url_from_settings(database: Mapping) -> str:
    """A DATABASE_URL for *database* (a Django DATABASES entry) that config.settings parses back.

    Called after pytest-django created the test database, NAME is the test database's name,
    so a worker started with this URL sees what a transactional test commits.
    """
    engine = database["ENGINE"]
    if engine == "django.db.backends.postgresql":
        user = quote(database.get("USER") or "", safe="")
        password = quote(database.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = database.get("HOST") or "127.0.0.1"
        port = database.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{quote(str(database['NAME']), safe='')}"
    if engine == "django.db.backends.sqlite3":
        name = str(database["NAME"])
        if name == ":memory:" or name.startswith("file:memorydb"):
            raise RuntimeError("an in-memory SQLite test database is invisible to worker processes: use PostgreSQL")
        return f"sqlite:///{name}"
    raise RuntimeError(f"no DATABASE_URL for engine {engine}")


# Short thresholds for end-to-end tests (DESIGN.md §4: tests shrink every threshold).
E2E_THRESHOLDS = {
    "CONVEYOR_SQS_WAIT_TIME_SECONDS": "1",
    "CONVEYOR_SQS_POLLING_INTERVAL": "0.1",
    "CONVEYOR_HEARTBEAT_INTERVAL_S": "0.2",
    "CONVEYOR_STALE_AFTER_S": "1.5",
    "CONVEYOR_START_THRESHOLD_S": "6",
    "CONVEYOR_REQUEUE_DELAY_S": "1",
    "CONVEYOR_REAPER_INTERVAL_S": "1",
    # A producer with the proxy cut must give up in seconds, not minutes.
    "CONVEYOR_SQS_CONNECT_TIMEOUT_S": "2",
}

_PASSED_THROUGH = (
    "DJANGO_SECRET_KEY",
    "CONVEYOR_MESSAGE_SIGNING_KEY",
    "CONVEYOR_MESSAGE_SIGNING_PREVIOUS_KEYS",
    "CONVEYOR_SECRETS_ENCRYPTION_KEYS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
)


def build_worker_env(
    *,
    database_url: str,
    sqs_endpoint_url: str,
    queue_prefix: str,
    visibility_timeout: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment overrides a worker/beat of one test runs with (see conftest.worker_env)."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    env.update({key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ})
    env.update(E2E_THRESHOLDS)
    env.update(
        {
            "DATABASE_URL": database_url,
            "AWS_ENDPOINT_URL_SQS": sqs_endpoint_url,
            "CONVEYOR_QUEUE_PREFIX": queue_prefix,
        }
    )
    if visibility_timeout is not None:
        env["CONVEYOR_SQS_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
    if extra:
        env.update({key: str(value) for key, value in extra.items()})
    return env


def _process_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # pytest's and pytest-django's own variables mean nothing to a worker.
    for key in list(env):
        if key.startswith("PYTEST_"):
            del env[key]
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env.update({key: str(value) for key, value in overrides.items()})
    pythonpath = [str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(pythonpath))
    env["PYTHONUNBUFFERED"] = "1"
    return env


# Run before exec'ing celery: ask the kernel for SIGKILL when the process that started it
# (pytest, a benchmark) dies, so not even a SIGKILLed test run leaves a worker polling.
# The setting survives exec; it fires when the *thread* that started the process exits, so
# start processes from the main thread (or a thread that outlives them).
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(70)  # the parent is already gone\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def _die_with_parent(argv: list[str]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]


def _celery_command() -> list[str]:
    script = Path(sys.executable).parent / "celery"
    if script.exists():
        return [str(script)]
    found = shutil.which("celery")
    return [found] if found else [sys.executable, "-m", "celery"]


# --------------------------------------------------------------------------------------
# process handles
# --------------------------------------------------------------------------------------


class CeleryProcess:
    """A running ``celery`` process (worker or beat) and the processes it started."""

    def __init__(self, kind: str, argv: list[str], env: dict[str, str], log_path: Path, ready_marker: str):
        self.kind = kind
        self.argv = argv
        self.log_path = log_path
        self.ready_marker = ready_marker
        self._log = open(log_path, "ab")  # closed in stop()
        self.popen = subprocess.Popen(
            _die_with_parent(argv),
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid
        self.pgid = self.pid
        self._seen: dict[int, ProcStat] = {}
        self._remember()

    def __repr__(self) -> str:
        return f"<CeleryProcess {self.kind} pid={self.pid} log={self.log_path}>"

    # -- inspection ----------------------------------------------------------------
    def _remember(self) -> None:
        own = proc_stat(self.pid)
        if own is not None and self.popen.poll() is None:
            self._seen.setdefault(own.pid, own)
            for stat in descendants_of(self.pid):
                self._seen.setdefault(stat.pid, stat)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def is_running(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def child_pids(self) -> list[int]:
        """Direct children of the main process (the prefork pool processes of a worker)."""
        self._remember()
        return children_of(self.pid) if self.is_running() else []

    def pool_pids(self, expected: int | None = None, timeout: float = 15.0) -> list[int]:
        """The pool processes; with *expected*, wait until there are that many."""
        if expected is not None:
            wait_until(lambda: len(self.child_pids()) >= expected or not self.is_running(), timeout)
        return self.child_pids()

    def tracked(self) -> list[ProcStat]:
        """Every process of this tree seen so far (main, pool children, their children)."""
        self._remember()
        return list(self._seen.values())

    def alive_tracked(self) -> list[ProcStat]:
        return [stat for stat in self.tracked() if is_alive(stat)]

    def wait_ready(self, timeout: float = 60.0) -> CeleryProcess:
        """Wait for the ready marker in the log; raise with the log if it never comes."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if self.ready_marker in text:
                self._remember()
                return self
            if not self.is_running():
                raise RuntimeError(f"{self.kind} exited with {self.returncode} before ready:\n{text[-6000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.kind} not ready after {timeout}s:\n{text[-6000:]}")
            time.sleep(0.05)

    def wait_for_log(self, needle: str, timeout: float = 30.0) -> bool:
        return wait_until(lambda: needle in self.log_text(), timeout)

    # -- signals -------------------------------------------------------------------
    def send_signal(self, sig: int) -> None:
        self._remember()
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        """SIGTERM to the main process (Celery: warm shutdown, or soft shutdown if remapped)."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the main process only: its pool children are left to die on their own."""
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the main process to exit; returns its exit code (None on timeout)."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 0.0) -> None:
        """Kill the whole tree; never leaves a process behind. Idempotent."""
        self._remember()
        if grace and self.is_running():
            self.terminate()
            self.wait(grace)
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stat in self._seen.values():  # descendants that left the process group
            if is_alive(stat):
                try:
                    os.kill(stat.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.popen.wait()
        wait_until(lambda: not self.alive_tracked(), timeout=5)
        if not self._log.closed:
            self._log.close()


# --------------------------------------------------------------------------------------
# launchers
# --------------------------------------------------------------------------------------


def _as_csv(value: str | Iterable[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def start_worker(
    env_overrides: Mapping[str, str],
    *,
    log_dir: str | os.PathLike,
    queues: str | Iterable[str] = "runs",
    concurrency: int = 2,
    pool: str = "prefork",
    hostname: str | None = None,
    include: Iterable[str] = (NOOP_TASKS_MODULE,),
    loglevel: str = "info",
    extra_args: Iterable[str] = (),
) -> CeleryProcess:
    """Start ``celery -A config worker`` consuming *queues* (prefix-less names: "runs")."""
    hostname = hostname or f"w-{uuid.uuid4().hex[:6]}@%h"
    argv = [
        *_celery_command(),
        "-A",
        "config",
        "worker",
        "-l",
        loglevel,
        "-Q",
        _as_csv(queues),
        "-c",
        str(concurrency),
        "-P",
        pool,
        "-n",
        hostname,
        # No remote control or events over SQS: keeps startup fast and quiet.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    include = list(include)
    if include:
        argv += ["-I", ",".join(include)]
    argv += list(extra_args)
    log_path = Path(log_dir) / f"worker-{hostname.split('@')[0]}-{uuid.uuid4().hex[:4]}.log"
    return CeleryProcess("worker", argv, _process_env(env_overrides), log_path, ready_marker=" ready.")


def start_beat(
    env_overrides: Mapping[str, str],
    *,
    log_dir: str | os.PathLike,
    scheduler: str | None = None,
    loglevel: str = "info",
    extra_args: Iterable[str] = (),
) -> CeleryProcess:
    """Start ``celery -A config beat`` with its schedule file in *log_dir*."""
    token = uuid.uuid4().hex[:6]
    argv = [*_celery_command(), "-A", "config", "beat", "-l", loglevel]
    if scheduler:
        argv += ["-S", scheduler]
    else:
        argv += ["-s", str(Path(log_dir) / f"celerybeat-schedule-{token}")]
    argv += ["--pidfile=", *extra_args]
    log_path = Path(log_dir) / f"beat-{token}.log"
    return CeleryProcess("beat", argv, _process_env(env_overrides), log_path, ready_marker="beat: Starting...")


def start_web(
    env_overrides: Mapping[str, str], *, log_dir: str | os.PathLike, port: int, extra_args: Iterable[str] = ()
) -> CeleryProcess:
    """Start the web server as the embedded platform does (`manage.py runserver`, no
    reloader) on 127.0.0.1:*port*: a real producer process of its own."""
    argv = [
        sys.executable,
        str(PROJECT_ROOT / "manage.py"),
        "runserver",
        f"127.0.0.1:{port}",
        "--noreload",
        "--insecure",
        *extra_args,
    ]
    log_path = Path(log_dir) / f"web-{port}.log"
    return CeleryProcess("web", argv, _process_env(env_overrides), log_path, ready_marker="Quit the server with")


class CeleryProcesses:
    """Starts workers, beats and web servers for one test and kills them all at the end."""

    def __init__(self, log_dir: str | os.PathLike, default_env: Mapping[str, str] | None = None):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.default_env = dict(default_env or {})
        self.started: list[CeleryProcess] = []

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {**self.default_env, **(env or {})}

    def start_worker(self, env: Mapping[str, str] | None = None, *, ready: bool = True, **kwargs) -> CeleryProcess:
        process = start_worker(self._env(env), log_dir=self.log_dir, **kwargs)
        self.started.append(process)
        return process.wait_ready() if ready else process

    def start_beat(self, env: Mapping[str, str] | None = None, *, ready: bool = True, **kwargs) -> CeleryProcess:
        process = start_beat(self._env(env), log_dir=self.log_dir, **kwargs)
        self.started.append(process)
        return process.wait_ready() if ready else process

    def start_web(self, env: Mapping[str, str] | None = None, *, port: int, ready: bool = True) -> CeleryProcess:
        process = start_web(self._env(env), log_dir=self.log_dir, port=port)
        self.started.append(process)
        return process.wait_ready() if ready else process

    def stop_all(self) -> list[ProcStat]:
        """Kill everything started; returns the processes that are somehow still alive."""
        for process in self.started:
            process.stop()
        return [stat for process in self.started for stat in process.alive_tracked()]

    def logs(self) -> str:
        return "\n".join(f"===== {p!r}\n{p.log_text()[-4000:]}" for p in self.started)


# --------------------------------------------------------------------------------------
# the producer side: the test process publishing to the same queues as its workers
# --------------------------------------------------------------------------------------

# Settings a worker environment must never change in the test process: the test process
# already talks to the test database, whatever DATABASE_URL the worker gets.
_NEVER_OVERRIDDEN = frozenset({"DATABASES", "DATABASE_URL", "SETTINGS_MODULE"})


def _settings_under(env: Mapping[str, str]) -> dict[str, object]:
    """Evaluate the settings module afresh with *env* on top of os.environ."""
    import importlib.util
    from unittest import mock

    from django.conf import settings

    # Under pytest-django's live_server the settings are wrapped and SETTINGS_MODULE is None.
    spec = importlib.util.find_spec(os.environ.get("DJANGO_SETTINGS_MODULE") or settings.SETTINGS_MODULE)
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, {key: str(value) for key, value in env.items()}):
        spec.loader.exec_module(module)
    return {name: getattr(module, name) for name in dir(module) if name.isupper()}


def _reset_celery_connections(app) -> None:
    """Forget every pooled broker connection and producer of *app*: the next publish
    opens a connection with the current transport options and endpoint."""
    from kombu import pools

    for pool in (app._pool, app.__dict__.get("amqp") and app.amqp._producer_pool):
        if pool:
            try:
                pool.force_close_all()
            except Exception:  # closing a connection to a cut endpoint may fail
                pass
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None
    pools.reset()


@contextlib.contextmanager
def settings_for_worker_env(env: Mapping[str, str], app=None):
    """Make the test process (the producer side) use the queues and endpoint of *env*.

    - os.environ gets *env* (except DATABASE_URL): boto3 reads AWS_ENDPOINT_URL_SQS from it
      when kombu creates its client, and so does anything the test process spawns;
    - Django settings that *env* changes (queue prefix, endpoint, thresholds, Celery options)
      are overridden with ``override_settings``: the settings module is evaluated again under
      *env*, so new settings need no change here;
    - the Celery app's conf reads Django settings live, so it follows the override (a key set
      on ``app.conf`` directly is overridden and put back explicitly); its connection and
      producer pools are dropped on entry and on exit so no connection made with the other
      prefix or endpoint is reused.

    A settings module that only star-imports another one is not re-evaluated by this
    (the imported module stays cached): point DJANGO_SETTINGS_MODULE at config.settings.
    """
    from django.test import override_settings

    if app is None:
        from config.celery import app

    # Compared with the module evaluated without *env*, not with the live settings, which
    # pytest-django / Django's test setup changed on purpose (DEBUG, EMAIL_BACKEND...).
    baseline, fresh = _settings_under({}), _settings_under(env)
    changed = {
        name: value
        for name, value in fresh.items()
        if name not in _NEVER_OVERRIDDEN and baseline.get(name, _MISSING) != value
    }
    celery_changes = {
        name[len("CELERY_") :].lower(): value for name, value in changed.items() if name.startswith("CELERY_")
    }
    env_changes = {key: str(value) for key, value in env.items() if key != "DATABASE_URL"}

    app.conf.broker_url  # noqa: B018 - finalizes app.conf (until then it is a pending view)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched_environ(env_changes))
        stack.enter_context(override_settings(**changed))
        # app.conf reads Django settings live, so override_settings is enough, unless a
        # key was set on app.conf directly: then it is set (and put back) here too.
        explicit = {key: app.conf.changes[key] for key in celery_changes if key in app.conf.changes}
        for key in explicit:
            app.conf[key] = celery_changes[key]
        _reset_celery_connections(app)
        try:
            yield app
        finally:
            _reset_celery_connections(app)
            for key, previous in explicit.items():
                app.conf.changes[key] = previous


_MISSING = object()


@contextlib.contextmanager
def _patched_environ(changes: Mapping[str, str]):
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
