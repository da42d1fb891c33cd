"""Runtimes: where a claimed run's steps execute.

- `isolated` (default): a fresh child process per run, forked by this pool process's fork
  server (pipeline/forkserver.py: started with `subprocess`, since a prefork pool process
  may not use multiprocessing, and restarted when found dead), or with
  CONVEYOR_ISOLATED_START=spawn a new interpreter per run; with a deadline and an
  address-space limit. The child is sealed (docs/decisions/0013): an allow-listed
  environment, no inherited descriptor but its pipes, no Django settings, no database,
  only the secrets its templates reference. It dies with its supervisor (the
  parent-death chain plus its own watch) and reports over a pipe; only the supervisor
  (this pool process) writes steps and status, and it refreshes heartbeat_at while the
  child works, even while a step blocks.
- `inline`: the steps run in the pool process itself, for trusted fast actions; a thread
  keeps the heartbeat. A step that holds the GIL longer than the stale threshold will be
  reaped (P-0003): that is the price of skipping the child process.

Failure points: spawn fails (the fork server cannot start, refuses a fork or is gone) →
P-0002; the child killed by a signal, out of memory, or taken down by its dying fork
server after it was ready → P-0003; the deadline passes → E-0001; an unexpected error
handing the run over → P-0004. `dispatch` records every one of them itself, through the
status writer: nothing is raised back to the consumer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from billiard.common import TERM_SIGNAL
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import F, Value
from django.db.models.functions import Concat

from executions.models import Execution
from executions.transitions import touch_heartbeat
from failures import faults
from failures.catalogue import Code
from failures.classifier import ORIGIN_PLATFORM, ORIGIN_STEP, Classification, classify, system_fault
from failures.errors import DispatchError, RunDeadlineExceeded, RuntimeSpawnError, SystemFault
from pipeline.forkserver import ForkServer, ForkServerError, die_with_parent, sealed_environment
from pipeline.supervision import (
    Claimed,
    DatabaseStepRecorder,
    complete,
    load_secrets,
    record_failure,
    record_shutdown,
    with_db_retry,
)
from workflows.engine import ClaimLost, RunContext, RunFailed, run_definition
from workflows.limits import pipe_message_limit, pipe_overflow_error
from workflows.runtime_settings import settings as runtime_settings

logger = logging.getLogger("conveyor.runtime")


class ShutdownRequested(BaseException):
    """The worker's grace period ended while a run was going. A BaseException so no
    `except Exception` in the engine or an action can swallow it."""


class _ShutdownFlag:
    def __init__(self) -> None:
        self.requested = False


def _pool_termination_signals() -> set[int]:
    """The signals that end a pool process: SIGTERM, or whatever billiard terminates its
    children with (SIGQUIT when REMAP_SIGTERM=SIGQUIT, as the soft shutdown wants)."""
    return {int(signal.SIGTERM), int(TERM_SIGNAL)}


@contextlib.contextmanager
def _on_sigterm(flag: _ShutdownFlag, *, raise_in_main: bool) -> Iterator[None]:
    """Catch the signal with which Celery ends its pool processes once the soft-shutdown
    grace is over, so the supervisor writes the run before it goes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        flag.requested = True
        if raise_in_main:
            raise ShutdownRequested()

    previous = {signum: signal.signal(signum, handler) for signum in _pool_termination_signals()}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _exit_after_shutdown() -> None:
    connection.close()
    logging.shutdown()
    os._exit(0)


# --- inline -----------------------------------------------------------------------------
class _InlineHeartbeats:
    """One thread per pool process refreshes the heartbeat of every inline run in it
    (started on first use, after the fork): no thread per run."""

    def __init__(self) -> None:
        self.runs: dict[uuid.UUID, Claimed] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = 0

    def _ensure_thread(self) -> None:
        if self.thread is None or not self.thread.is_alive() or self.pid != os.getpid():
            self.pid = os.getpid()
            self.thread = threading.Thread(target=self._loop, name="inline-heartbeats", daemon=True)
            self.thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(settings.HEARTBEAT_INTERVAL_S)
            with self.lock:
                runs = list(self.runs.values())
            for claimed in runs:
                try:
                    with_db_retry(touch_heartbeat, claimed.execution_id, claimed.claim_token)
                except Exception:
                    logger.exception("heartbeat failed", extra={"execution_id": str(claimed.execution_id)})
                    connection.close()

    @contextlib.contextmanager
    def beating(self, claimed: Claimed) -> Iterator[None]:
        with self.lock:
            self.runs[claimed.execution_id] = claimed
            self._ensure_thread()
        try:
            yield
        finally:
            with self.lock:
                self.runs.pop(claimed.execution_id, None)


_inline_heartbeats = _InlineHeartbeats()


def run_inline(claimed: Claimed) -> None:
    secrets = load_secrets(claimed)
    context = RunContext(
        execution_id=str(claimed.execution_id),
        workflow_id=claimed.workflow_id,
        organization_id=claimed.organization_id,
        input=claimed.input,
        secrets=secrets,
        deadline=time.monotonic() + claimed.deadline_seconds,
        reused_outputs=claimed.reused_outputs,
        idempotency_base=claimed.idempotency_base,
    )
    flag = _ShutdownFlag()
    with _inline_heartbeats.beating(claimed):
        with _on_sigterm(flag, raise_in_main=True):
            try:
                output = run_definition(claimed.definition, context, DatabaseStepRecorder(claimed))
            except RunFailed as failure:
                record_failure(claimed, failure.classification)
                return
            except ClaimLost:
                logger.warning("claim lost during an inline run", extra={"execution_id": str(claimed.execution_id)})
                return
            except ShutdownRequested:
                record_shutdown(claimed)
                _exit_after_shutdown()
            complete(claimed, output)


# --- isolated ---------------------------------------------------------------------------
class _Child:
    """One run's child process, however it was started: its pid, its pipes (line-delimited
    JSON in, out), its stderr file, and how to kill it and learn how it ended."""

    def __init__(self, pid: int, stdin: Any, stdout: Any, stderr: Any):
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr

    def kill(self) -> None:
        raise NotImplementedError

    def wait(self, timeout: float) -> int | None:
        """The exit status (negative: killed by that signal), None if not known in time."""
        raise NotImplementedError

    def close(self) -> None:
        for handle in (self.stdin, self.stdout, self.stderr):
            with contextlib.suppress(OSError, ValueError):
                handle.close()

    def release(self) -> None:
        """The run is over (and written): make sure the child is gone, free its handles."""
        self.kill()
        self.wait(timeout=10)
        self.close()


class _SpawnedChild(_Child):
    """A fresh interpreter per run (CONVEYOR_ISOLATED_START=spawn: the baseline)."""

    def __init__(self, proc: subprocess.Popen, stderr: Any):
        super().__init__(proc.pid, proc.stdin, proc.stdout, stderr)
        self.proc = proc

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


class _ForkedChild(_Child):
    """A child forked by this pool process's fork server. The supervisor is not its
    parent: it kills through a pidfd (never a recycled pid) and learns the exit status
    from the server, which reaps it."""

    def __init__(self, server: ForkServer, pid: int, stdin: Any, stdout: Any, stderr: Any):
        super().__init__(pid, stdin, stdout, stderr)
        self.server = server
        self.code: int | None = None
        try:
            self.pidfd = os.pidfd_open(pid)
        except OSError:
            self.pidfd = -1

    def kill(self) -> None:
        if self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def wait(self, timeout: float) -> int | None:
        if self.code is None:
            self.code = self.server.exit_code(self.pid, timeout)
        return self.code

    def release(self) -> None:
        # Killed through the pidfd; its exit status is no longer needed, so the pool
        # process does not wait for the fork server's notice before its next run.
        self.kill()
        if self.code is None:
            self.server.forget(self.pid)
        self.close()

    def close(self) -> None:
        super().close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


_forkserver: ForkServer | None = None


def _fork_server() -> ForkServer:
    """This pool process's fork server, started on first use and again after it died."""
    global _forkserver
    wanted: dict[str, Any] = {
        "python": settings.RUNTIME_PYTHON or sys.executable,
        "base_dir": str(settings.BASE_DIR),
        "preload": sorted({dotted.rpartition(".")[0] for dotted in settings.PYTHON_CALLABLE_ALLOWLIST}),
        "start_timeout": settings.RUNTIME_SPAWN_TIMEOUT_S,
    }
    if _forkserver is None or _forkserver.owner not in (0, os.getpid()) or _forkserver.config != wanted:
        if _forkserver is not None and _forkserver.owner == os.getpid():
            _forkserver.stop()  # started with other settings (a test's override)
        _forkserver = ForkServer(**wanted)
    try:
        _forkserver.ensure()
    except ForkServerError as exc:
        raise RuntimeSpawnError(str(exc)) from exc
    return _forkserver


def start_fork_server() -> None:
    """Warm the fork server before the first run (worker_process_init); a failure here
    is only logged: the first run tries again and reports P-0002."""
    if settings.RUNTIME_ISOLATED_START != "forkserver":
        return
    try:
        _fork_server()
    except RuntimeSpawnError:
        logger.warning("the fork server did not start; the next isolated run retries", exc_info=True)


def _spawn_child(stderr: Any) -> _Child:
    parent = os.getpid()
    memory_limit_mb = settings.RUNTIME_MEMORY_LIMIT_MB

    def setup() -> None:
        die_with_parent(parent)
        if memory_limit_mb:
            limit = memory_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        proc = subprocess.Popen(
            [settings.RUNTIME_PYTHON or sys.executable, "-m", "pipeline.runtime_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            preexec_fn=setup,
            cwd=str(settings.BASE_DIR),
            env=sealed_environment(str(settings.BASE_DIR)),
            close_fds=True,
        )
    except OSError as exc:
        raise RuntimeSpawnError(f"could not start the isolated runtime: {exc}") from exc
    return _SpawnedChild(proc, stderr)


def _fork_child(stderr: Any) -> _Child:
    server = _fork_server()
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    try:
        pid = server.fork(
            [to_child_r, from_child_w, stderr.fileno()],
            memory_limit_mb=settings.RUNTIME_MEMORY_LIMIT_MB,
            timeout=settings.RUNTIME_SPAWN_TIMEOUT_S,
        )
    except ForkServerError as exc:
        os.close(to_child_w)
        os.close(from_child_r)
        raise RuntimeSpawnError(str(exc)) from exc
    finally:
        # The child holds its ends now; the supervisor keeps only its own.
        os.close(to_child_r)
        os.close(from_child_w)
    return _ForkedChild(server, pid, os.fdopen(to_child_w, "wb"), os.fdopen(from_child_r, "rb"), stderr)


def start_child() -> _Child:
    """A fresh, sealed child for one run: forked by the fork server, or (spawn) a new
    interpreter. Any failure to get one is RuntimeSpawnError (P-0002)."""
    stderr = tempfile.TemporaryFile()
    try:
        if settings.RUNTIME_ISOLATED_START == "spawn":
            return _spawn_child(stderr)
        return _fork_child(stderr)
    except BaseException:
        stderr.close()
        raise


class _ChildChannel:
    """Line-delimited JSON over the child's pipes."""

    def __init__(self, child: _Child, max_line_bytes: int):
        self.child = child
        # Chunks of the unterminated line: joining once per line, not once per read, keeps a
        # large output linear to receive.
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.max_line_bytes = max_line_bytes
        self.overflowed = False
        self.closed = False

    def send(self, message: dict) -> None:
        try:
            self.child.stdin.write(json.dumps(message).encode() + b"\n")
            self.child.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the child is gone; its exit status says why

    def receive(self, timeout: float) -> list[dict]:
        if self.closed:
            time.sleep(min(timeout, 0.05))
            return []
        ready, _, _ = select.select([self.child.stdout], [], [], max(0.0, timeout))
        if not ready:
            return []
        chunk = os.read(self.child.stdout.fileno(), 65536)
        if not chunk:
            self.closed = True
            return []
        if b"\n" not in chunk:
            self.pending.append(chunk)
            self.pending_bytes += len(chunk)
            if self.pending_bytes > self.max_line_bytes:
                # A child that kept the engine's output limits never writes a line this long:
                # stop reading rather than buffer without bound.
                self.overflowed = True
                self.closed = True
                self.pending = []
            return []
        lines = (b"".join(self.pending) + chunk).split(b"\n")
        tail = lines.pop()
        self.pending, self.pending_bytes = ([tail], len(tail)) if tail else ([], 0)
        messages = []
        for line in lines:
            if line.strip():
                try:
                    messages.append(json.loads(line))
                except json.JSONDecodeError:
                    messages.append({"type": "garbage", "line": line[:200].decode(errors="replace")})
        return messages


def _stderr_tail(handle: Any) -> str:
    try:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 2000))
        return handle.read().decode(errors="replace").strip()
    except (OSError, ValueError):
        return ""


def _kill(child: _Child) -> None:
    child.kill()
    child.wait(timeout=10)


def child_payload(claimed: Claimed) -> dict[str, Any]:
    """All the child is handed: the definition, the input, the secrets its templates
    reference (decrypted), the deadline and the runtime settings. Nothing else of the
    platform reaches it."""
    return {
        "definition": claimed.definition,
        "context": {
            "execution_id": str(claimed.execution_id),
            "workflow_id": claimed.workflow_id,
            "organization_id": claimed.organization_id,
            "input": claimed.input,
            "secrets": load_secrets(claimed),
            # A resume: what it reuses, and whose Idempotency-Keys it sends.
            "reused_outputs": claimed.reused_outputs,
            "idempotency_base": claimed.idempotency_base,
        },
        "deadline_seconds": claimed.deadline_seconds,
        "settings": runtime_settings.snapshot(),
    }


def run_isolated(claimed: Claimed) -> None:
    payload = child_payload(claimed)
    child = start_child()
    Execution.objects.filter(pk=claimed.execution_id, claim_token=claimed.claim_token).update(
        worker=Concat(F("worker"), Value(f" runtime={child.pid}"))
    )
    try:
        _supervise(child, claimed, payload)
    finally:
        child.release()


def _heartbeat(claimed: Claimed) -> bool:
    """Refresh the heartbeat; a database hiccup is not the run's loss (True: keep going,
    the next beat reconnects)."""
    try:
        return with_db_retry(touch_heartbeat, claimed.execution_id, claimed.claim_token)
    except DatabaseError:
        logger.warning("heartbeat could not reach the database", exc_info=True)
        connection.close()
        return True


def _supervise(proc: _Child, claimed: Claimed, payload: dict) -> None:
    channel = _ChildChannel(proc, max_line_bytes=pipe_message_limit())
    channel.send(payload)
    recorder = DatabaseStepRecorder(claimed)
    last_started_step: str | None = None
    flag = _ShutdownFlag()
    started = time.monotonic()
    deadline = started + claimed.deadline_seconds
    ready = False
    next_heartbeat = started + settings.HEARTBEAT_INTERVAL_S
    with _on_sigterm(flag, raise_in_main=False):
        while True:
            now = time.monotonic()
            if flag.requested:
                _kill(proc)
                record_shutdown(claimed)
                _exit_after_shutdown()
            if now >= deadline:
                _kill(proc)
                record_failure(
                    claimed,
                    classify(RunDeadlineExceeded(f"run passed its deadline of {claimed.deadline_seconds:.0f}s")),
                )
                return
            if not ready and now - started > settings.RUNTIME_SPAWN_TIMEOUT_S:
                _kill(proc)
                raise RuntimeSpawnError(f"the runtime did not start within {settings.RUNTIME_SPAWN_TIMEOUT_S}s")
            if now >= next_heartbeat:
                next_heartbeat = now + settings.HEARTBEAT_INTERVAL_S
                if not _heartbeat(claimed):
                    # Cancelled, or reaped as P-0001: the run is no longer ours.
                    _kill(proc)
                    logger.warning(
                        "run lost its claim; runtime stopped", extra={"execution_id": str(claimed.execution_id)}
                    )
                    return
            timeout = min(next_heartbeat, deadline) - now
            for message in channel.receive(timeout=min(timeout, 0.5)):
                kind = message.get("type")
                if kind == "ready":
                    ready = True
                elif kind == "step_start":
                    last_started_step = message["step_id"]
                    ok = recorder.start_step(message["step_id"], message["action"], int(message["position"]))
                    channel.send({"type": "step_ack", "ok": ok})
                elif kind == "step_finish":
                    recorder.finish_step(
                        message["step_id"],
                        status=message["status"],
                        output=message.get("output"),
                        error_type=message.get("error_type", ""),
                        error_message=message.get("error_message", ""),
                        attempts=message.get("attempts"),
                        reused=bool(message.get("reused")),
                    )
                elif kind == "result":
                    complete(claimed, message.get("output"))
                    return
                elif kind == "failed":
                    record_failure(claimed, Classification(**message["classification"]))
                    return
                elif kind == "claim_lost":
                    return
            if channel.overflowed:
                _kill(proc)
                record_failure(claimed, classify(pipe_overflow_error(last_started_step), ORIGIN_STEP))
                return
            if channel.closed:
                code = proc.wait(timeout=5)
                if code is None:
                    proc.kill()
                    code = proc.wait(timeout=5)
                _record_child_exit(claimed, code, ready, _stderr_tail(proc.stderr))
                return


def _record_child_exit(claimed: Claimed, returncode: int | None, ready: bool, stderr_tail: str) -> None:
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        detail = f"runtime killed by {name}"
    elif returncode is None:
        # A forked child whose fork server died: the death chain killed the child too.
        detail = "runtime killed: its fork server is gone"
    else:
        detail = f"runtime exited with status {returncode} without a result"
    if stderr_tail:
        detail = f"{detail}; stderr: {stderr_tail[-1000:]}"
    if not ready and (returncode is None or returncode >= 0):
        raise RuntimeSpawnError(f"the runtime failed to start: {detail}")
    if "MemoryError" in stderr_tail:
        detail = f"runtime out of memory: {detail}"
    record_failure(claimed, system_fault(Code.P0003, detail, rule="runtime-exit"))


def dispatch(claimed: Claimed, runtime: str) -> None:
    """Run a claimed run to its end in the chosen runtime, and record how it ended:
    failures of the runtime with their own codes, anything unexpected as P-0004."""

    try:
        faults.maybe_inject("dispatch")
        if runtime == "inline":
            run_inline(claimed)
        else:
            run_isolated(claimed)
    except SystemFault as fault:
        record_failure(claimed, classify(fault))
    except Exception as exc:
        close_old_connections()
        classification = classify(exc, ORIGIN_PLATFORM)
        if classification.code == Code.C0001:
            classification = classify(DispatchError(f"dispatch failed: {type(exc).__name__}: {exc}"))
        record_failure(claimed, classification)


__all__ = ["ShutdownRequested", "child_payload", "dispatch", "run_inline", "run_isolated", "start_fork_server"]
