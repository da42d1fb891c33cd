"""`manage.py platform`: the whole of Conveyor on one machine, as one process tree.

It starts moto's SQS server, creates the queues, runs `bootstrap`, then starts the same
pieces production runs separately — a Celery worker for the runs queue, a second worker
for the maintenance queue (the reaper never waits behind long runs), celery beat and the
web server — runs the example workflow once, and supervises them until Ctrl-C (SIGINT) or
SIGTERM, when it stops them all (SIGTERM, then SIGKILL after a grace period) and exits 0.
If one of them fails to start, it says which, stops the rest and exits non-zero. Once the
platform runs, a process that dies (a worker that exited for its process manager after its
consumer could not recover, a killed beat, moto) is restarted with a back-off (1 s, 2 s,
4 s, ... up to a minute; back to 1 s after it ran for a minute), saying so with the end
of its log: the rest keeps running.

Children's output goes to <CONVEYOR_VAR_DIR>/logs/<name>.log; the supervisor's pid is in
<CONVEYOR_VAR_DIR>/platform.pid while it runs.

The command needs CONVEYOR_EMBEDDED=1 in its own environment (settings refuse to start
without a secret key otherwise): `make up` sets it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from devtools.management.commands.bootstrap import EXAMPLE_INPUT, EXAMPLE_WORKFLOW_NAME
from devtools.procs import ProcStat, descendants_of, is_alive
from executions.enqueue import EnqueueFailed, enqueue
from executions.outputs import run_output
from failures.statuses import TERMINAL, ExecutionStatus
from messaging import queue
from workflows.models import Workflow

HOST = "127.0.0.1"
DEFAULT_WEB_PORT = 8000
DEFAULT_SQS_PORT = 9324
WEB_PORT_ENV = "CONVEYOR_WEB_PORT"
SQS_PORT_ENV = "CONVEYOR_SQS_PORT"

MOTO_READY_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 120.0
EXAMPLE_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0  # web, beat and moto
WORKER_STOP_MARGIN_S = 15.0  # on top of the workers' soft-shutdown timeout
TICK_S = 0.2
RESTART_BACKOFF_MAX_S = 60.0
RESTART_HEALTHY_AFTER_S = 60.0  # a child that ran this long starts its back-off afresh

# Names and values the children must not inherit: moto accepts any key, and a profile or
# session token meant for real AWS must never be sent to it (or fail the client's setup).
_AWS_DROPPED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")

_PR_SET_PDEATHSIG = 1
try:  # loaded now: dlopen after fork (in preexec_fn) is not safe
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


def _die_with_parent(parent_pid: int):
    """preexec_fn: the child gets SIGTERM if the supervisor dies (even by SIGKILL), so a
    crashed platform never leaves a worker or moto running unseen (Linux only)."""

    def setup() -> None:
        if _LIBC is not None and hasattr(_LIBC, "prctl"):
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)

    return setup


# --------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------


@dataclass(eq=False)
class Child:
    """One supervised process in its own session, its output in a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    grace_s: float
    popen: subprocess.Popen | None = None
    expected_exit: bool = False
    started_at: float = 0.0
    restarts: int = 0  # in a row, since it last ran healthily
    restart_at: float | None = None

    def start(self, *, append: bool = False) -> None:
        self.started_at = time.monotonic()
        self.restart_at = None
        with open(self.log_path, "ab" if append else "wb") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=settings.BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C in the terminal reaches the supervisor only, which
                # then stops the children in order.
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def send(self, sig: int) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL whatever is left in the child's process group (its session)."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_contains(self, needle: str) -> bool:
        try:
            return needle in self.log_path.read_text(errors="replace")
        except OSError:
            return False


class _Interrupted(Exception):
    def __init__(self, signum: int):
        self.signum = signum


class _ChildDied(Exception):
    def __init__(self, child: Child):
        self.child = child


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: a port whose last connections are in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise CommandError(f"{name}={raw!r} is not a port number") from None


# --------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------


class Command(BaseCommand):
    help = (
        "Run the whole platform on this machine (moto SQS, a runs worker, a maintenance worker, celery beat "
        "and the web server), run the example workflow once, and stop everything cleanly on Ctrl-C."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=_env_port(WEB_PORT_ENV, DEFAULT_WEB_PORT),
            help=f"Web server port on {HOST} (default: %(default)s, or {WEB_PORT_ENV}).",
        )
        parser.add_argument(
            "--sqs-port",
            type=int,
            default=_env_port(SQS_PORT_ENV, DEFAULT_SQS_PORT),
            help=f"Port of the embedded SQS server, moto (default: %(default)s, or {SQS_PORT_ENV}).",
        )
        parser.add_argument("--no-example", action="store_true", help="Do not run the example workflow.")
        parser.add_argument(
            "--reset-password", action="store_true", help="Give the existing admin a new password (see bootstrap)."
        )

    # -- output ----------------------------------------------------------------------
    def say(self, message: str, style=None) -> None:
        self.stdout.write(style(message) if style else message)
        self.stdout.flush()

    def warn(self, message: str) -> None:
        self.stderr.write(message)
        self.stderr.flush()

    # -- signals ---------------------------------------------------------------------
    def _on_signal(self, signum: int, frame) -> None:
        self._signals.append(signum)
        if len(self._signals) == 2:
            # Written directly: the handler may run while the main code holds stdout's lock.
            os.write(2, b"[platform] second signal: killing the remaining processes now\n")

    def _check(self) -> None:
        if self._signals:
            raise _Interrupted(self._signals[0])
        for child in self.children:
            if not child.expected_exit and child.popen is not None and not child.running():
                if not self._supervising:
                    raise _ChildDied(child)  # it never started: restarting would hide why
                self._restart_later_or_now(child)

    def _restart_later_or_now(self, child: Child) -> None:
        now = time.monotonic()
        if child.restart_at is None:
            if now - child.started_at >= RESTART_HEALTHY_AFTER_S:
                child.restarts = 0
            delay = min(RESTART_BACKOFF_MAX_S, 2.0**child.restarts)
            child.restart_at = now + delay
            self.warn(
                f"[platform] {child.name} exited unexpectedly ({_describe_exit(child.returncode)}); restarting it "
                f"in {delay:.0f} s (restart {child.restarts + 1} in a row). The last lines of {child.log_path}:\n"
                f"{child.log_tail(15)}"
            )
            return
        if now < child.restart_at:
            return
        child.restarts += 1
        child.start(append=True)
        self._remember_tree()
        self.say(f"[platform] restarted {child.name} (pid {child.pid})")
        if child.name == "moto":
            # A new SQS server has no queues: create them now (the workers, beat and the web
            # process would also create them again on their own).
            port = int(self.sqs_url.rsplit(":", 1)[1])
            deadline = time.monotonic() + MOTO_READY_TIMEOUT_S
            while not _port_answers(port) and time.monotonic() < deadline and child.running():
                time.sleep(TICK_S)
            with contextlib.suppress(Exception):
                self._create_queues()

    def _wait_until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check()
            if predicate():
                return
            if time.monotonic() > deadline:
                raise CommandError(f"{what} not ready after {timeout:.0f} s")
            time.sleep(TICK_S)

    # -- main ------------------------------------------------------------------------
    def handle(self, *args, **options) -> None:
        self._signals: list[int] = []
        self._supervising = False
        self.children: list[Child] = []
        self._tree: dict[int, ProcStat] = {}
        web_port, sqs_port = options["port"], options["sqs_port"]
        for label, port in (("web", web_port), ("SQS", sqs_port)):
            if not 0 < port < 65536:
                raise CommandError(f"{label} port {port} is out of range")
        if web_port == sqs_port:
            raise CommandError("--port and --sqs-port must differ")
        for label, port, flag in (("web server", web_port, "--port"), ("SQS server", sqs_port, "--sqs-port")):
            if not _port_free(port):
                raise CommandError(
                    f"{HOST}:{port} (the {label}) is already in use — is Conveyor already running? "
                    f"Choose another port with {flag}."
                )

        var_dir = Path(settings.VAR_DIR)
        self.log_dir = var_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        pid_file = var_dir / "platform.pid"
        self.web_url = f"http://{HOST}:{web_port}"
        self.admin_url = f"{self.web_url}/admin/"
        sqs_url = f"http://{HOST}:{sqs_port}"
        self._configure_environment(sqs_url, var_dir)

        # From here on a signal only sets a flag, which every wait checks: the children are
        # always stopped in order, whatever the platform was doing.
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        failure: str | None = None
        try:
            pid_file.write_text(f"{os.getpid()}\n")
            self._start(sqs_port, web_port, options)
            self._monitor()
        except _Interrupted as stop:
            self.say(f"\n[platform] {signal.Signals(stop.signum).name} received: stopping")
        except _ChildDied as died:
            child = died.child
            failure = f"{child.name} exited unexpectedly ({_describe_exit(child.returncode)})"
            self.warn(f"[platform] {failure}; the last lines of {child.log_path}:\n{child.log_tail()}")
        except CommandError as exc:
            failure = str(exc)
            self.warn(f"[platform] {failure}")
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
            self.warn(f"[platform] failed: {failure}")
            raise
        finally:
            connections.close_all()
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            with contextlib.suppress(OSError):
                pid_file.unlink()
        if failure:
            raise CommandError(f"the platform stopped: {failure}")
        self.say("[platform] Conveyor stopped cleanly.")

    def _configure_environment(self, sqs_url: str, var_dir: Path) -> None:
        """The embedded defaults, for this process (producer, queue creation) and the children."""
        for name in _AWS_DROPPED:
            os.environ.pop(name, None)
        os.environ.setdefault("CONVEYOR_EMBEDDED", "1")
        os.environ["CONVEYOR_VAR_DIR"] = str(var_dir)
        os.environ["AWS_ENDPOINT_URL_SQS"] = sqs_url
        os.environ["AWS_ACCESS_KEY_ID"] = "testing"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
        os.environ["AWS_DEFAULT_REGION"] = settings.AWS_REGION
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        # Settings were read before this command ran: point this process at moto too.
        settings.SQS_ENDPOINT_URL = sqs_url
        self.env = dict(os.environ)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.sqs_url = sqs_url

    def _child(self, name: str, argv: list[str], *, grace_s: float = STOP_GRACE_S, **env: str) -> Child:
        child = Child(name, argv, {**self.env, **env}, self.log_dir / f"{name}.log", grace_s)
        child.start()
        self.children.append(child)
        self._remember_tree()
        return child

    def _remember_tree(self) -> None:
        for proc in descendants_of(os.getpid()):
            if not is_alive(proc):
                continue
            self._tree.setdefault(proc.pid, proc)

    # -- start -----------------------------------------------------------------------
    def _start(self, sqs_port: int, web_port: int, options: dict) -> None:
        python = sys.executable
        self.say(f"[platform] starting Conveyor; the processes' logs go to {self.log_dir}/<name>.log")

        self.say(f"[platform] moto (embedded SQS) on {self.sqs_url}")
        self._child("moto", [python, "-m", "moto.server", "-H", HOST, "-p", str(sqs_port)])
        self._wait_until(lambda: _port_answers(sqs_port), MOTO_READY_TIMEOUT_S, "moto's SQS server")
        names = self._create_queues()
        self.say(f"[platform] queues ready: {', '.join(names)}")

        out = StringIO()
        call_command(
            "bootstrap",
            admin_url=self.admin_url,
            reset_password=options["reset_password"],
            stdout=out,
            no_color=True,
            verbosity=options["verbosity"],
        )
        connections.close_all()
        for line in out.getvalue().splitlines():
            self.say(f"[bootstrap] {line}")
        self.credentials = next(
            (line for line in out.getvalue().splitlines() if line.startswith("Admin login:")), "Admin login: ?"
        )
        self._check()

        worker_grace = settings.WORKER_SOFT_SHUTDOWN_TIMEOUT_S + WORKER_STOP_MARGIN_S
        celery = [python, "-m", "celery", "-A", "config"]
        # No gossip, mingle or remote-control heartbeat over SQS: no broadcast is needed here.
        quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        runs = self._child(
            "worker-runs",
            [*celery, "worker", "-l", "info", "-Q", settings.RUNS_QUEUE, "-c", "2", "-n", "runs@%h", *quiet],
            grace_s=worker_grace,
            REMAP_SIGTERM="SIGQUIT",  # SIGTERM → soft shutdown: in-flight runs get a grace period
        )
        maintenance = self._child(
            "worker-maintenance",
            [*celery, "worker", "-l", "info", "-Q", settings.MAINTENANCE_QUEUE, "-c", "1", "-n", "maintenance@%h"]
            + quiet,
            grace_s=worker_grace,
            REMAP_SIGTERM="SIGQUIT",
        )
        schedule = Path(settings.VAR_DIR) / "celerybeat-schedule"
        self._child("beat", [*celery, "beat", "-l", "info", "-s", str(schedule), "--pidfile="])
        self._child(
            "web",
            # --insecure: serve the admin's static files without DEBUG (embedded use only).
            [
                python,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "runserver",
                f"{HOST}:{web_port}",
                "--noreload",
                "--insecure",
            ],
        )
        self.say("[platform] started worker-runs, worker-maintenance, beat and web; waiting until they are ready")
        login = f"{self.admin_url}login/"
        self._wait_until(lambda: runs.log_contains(" ready."), READY_TIMEOUT_S, "the runs worker")
        self._wait_until(lambda: maintenance.log_contains(" ready."), READY_TIMEOUT_S, "the maintenance worker")
        self._wait_until(lambda: _http_ok(login), READY_TIMEOUT_S, f"the web server ({login})")
        self._remember_tree()
        self.say(f"[platform] web server answering at {self.web_url}")

        if not options["no_example"]:
            self._run_example()
        self._summary()

    def _create_queues(self) -> list[str]:
        # Created before kombu sees them, with the visibility timeout from settings (kombu
        # only sets it on the queues it creates itself).
        return sorted(queue.full_name(name) for name in queue.ensure_queues(refresh=True))

    def _run_example(self) -> None:
        workflow = Workflow.objects.alive().filter(name=EXAMPLE_WORKFLOW_NAME, organization__slug="example").first()
        if workflow is None:
            self.warn(f'[platform] no example workflow "{EXAMPLE_WORKFLOW_NAME}" (deleted?): not running it')
            return
        try:
            execution = enqueue(workflow, trigger_type="manual", input=dict(EXAMPLE_INPUT)).execution
        except EnqueueFailed as exc:
            self.warn(f"[platform] the example run {exc.execution.id} could not be queued ({exc.code})")
            return
        finally:
            connections.close_all()
        run_url = f"{self.admin_url}executions/execution/{execution.id}/change/"
        self.say(f"[platform] example run {execution.id} queued (workflow {workflow.name!r}, input {EXAMPLE_INPUT})")
        deadline = time.monotonic() + EXAMPLE_TIMEOUT_S
        try:
            while True:
                self._check()
                execution.refresh_from_db()
                if execution.status in TERMINAL or time.monotonic() > deadline:
                    break
                time.sleep(TICK_S * 2)
        finally:
            connections.close_all()
        if execution.status not in TERMINAL:
            self.warn(
                f"[platform] example run {execution.id} is still {execution.status} after {EXAMPLE_TIMEOUT_S:.0f} s: "
                f"see {self.log_dir / 'worker-runs.log'} and {run_url}"
            )
            return
        if execution.status == ExecutionStatus.SUCCESS:
            output = run_output(execution)
            result = output.get("result", output) if isinstance(output, dict) else output
            self.say(f"[platform] example run {execution.id} ended: success (result {result})", self.style.SUCCESS)
        else:
            code = f" {execution.error_code}" if execution.error_code else ""
            self.warn(
                f"[platform] example run {execution.id} ended: {execution.status}{code} — "
                f"{execution.customer_message} (see {self.log_dir / 'worker-runs.log'})"
            )
        self.say(f"[platform] see it at {run_url}")

    def _summary(self) -> None:
        logs = ", ".join(f"{child.name}.log" for child in self.children)
        self.say("")
        self.say("Conveyor is running. Press Ctrl-C to stop it.", self.style.SUCCESS)
        self.say(f"  Admin:     {self.admin_url}")
        self.say(f"  {self.credentials}")
        self.say(f"  SQS:       {self.sqs_url} (moto, in memory: queued messages are lost when it stops)")
        self.say(f"  Database:  {settings.DATABASES['default']['NAME']}")
        self.say(f"  Logs:      {self.log_dir}/ ({logs})")

    def _monitor(self) -> None:
        self._supervising = True
        ticks = 0
        while True:
            self._check()
            ticks += 1
            if ticks % 25 == 0:  # every ~5 s: remember new descendants (isolated runtimes)
                self._remember_tree()
            time.sleep(TICK_S)

    # -- stop ------------------------------------------------------------------------
    def _stop_all(self) -> None:
        if not self.children:
            return
        self._remember_tree()
        for child in self.children:
            child.expected_exit = True
        moto = [child for child in self.children if child.name == "moto"]
        first = [child for child in self.children if child.name != "moto"]
        # Workers first (they may still write runs and requeue through SQS), moto last.
        self._stop_group(first)
        self._stop_group(moto)
        leftovers = [proc for proc in self._tree.values() if is_alive(proc)]
        for proc in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        if leftovers:
            self.warn(f"[platform] killed {len(leftovers)} leftover process(es): {[p.pid for p in leftovers]}")

    def _stop_group(self, children: list[Child]) -> None:
        running = [child for child in children if child.running()]
        if not running:
            for child in children:
                child.kill_group()
            return
        self.say(f"[platform] stopping {', '.join(child.name for child in running)}")
        for child in running:
            child.send(signal.SIGTERM)
        started = time.monotonic()
        killed: set[str] = set()
        while True:
            still = [child for child in running if child.running()]
            if not still:
                break
            hurry = len(self._signals) >= 2
            for child in still:
                if hurry or time.monotonic() - started > child.grace_s:
                    if child.name not in killed:
                        killed.add(child.name)
                        self.warn(f"[platform] {child.name} did not stop in time: killing it")
                    child.kill_group()
            time.sleep(0.1)
        for child in children:
            child.kill_group()  # whatever the main process left in its session
        for child in running:
            self.say(f"[platform] {child.name} stopped ({_describe_exit(child.returncode)})")
