"""Runtimes: where a claimed run's steps execute.

- `isolated` (default): a child process per run, started with `subprocess` (a prefork
  pool process may not use multiprocessing), with a deadline and an address-space limit.
  The child dies with its supervisor (parent-death signal plus its own watch on the
  parent) and reports over a pipe; only the supervisor (this pool process) writes steps
  and status, and it refreshes heartbeat_at while the child works, even while a step
  blocks.
- `inline`: the steps run in the pool process itself, for trusted fast actions; a thread
  keeps the heartbeat. A step that holds the GIL longer than the stale threshold will be
  reaped (P-0003): that is the price of skipping the child process.

Failure points: spawn fails → P-0002; the child killed by a signal or out of memory →
P-0003; the deadline passes → E-0001; an unexpected error handing the run over → P-0004.
`dispatch` records every one of them itself, through the status writer: nothing is
raised back to the consumer.
"""

from __future__ import annotations

import contextlib
import ctypes
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
from failures.classifier import ORIGIN_PLATFORM, Classification, classify, system_fault
from failures.errors import DispatchError, RunDeadlineExceeded, RuntimeSpawnError, SystemFault
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

logger = logging.getLogger("conveyor.runtime")

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - non-glibc platforms
    _libc = None


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
def _child_setup(parent_pid: int, memory_limit_mb: int):
    def setup() -> None:
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
            os._exit(137)
        if memory_limit_mb:
            limit = memory_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return setup


def _child_command() -> list[str]:
    python = settings.RUNTIME_PYTHON or sys.executable
    return [python, "-m", "pipeline.runtime_child"]


class _ChildChannel:
    """Line-delimited JSON over the child's stdin/stdout."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.buffer = b""
        self.closed = False

    def send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child is gone; its exit status says why

    def receive(self, timeout: float) -> list[dict]:
        assert self.proc.stdout is not None
        if self.closed:
            time.sleep(min(timeout, 0.05))
            return []
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, timeout))
        if not ready:
            return []
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            self.closed = True
            return []
        self.buffer += chunk
        lines = self.buffer.split(b"\n")
        self.buffer = lines.pop()
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


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def run_isolated(claimed: Claimed) -> None:
    secrets = load_secrets(claimed)
    payload = {
        "definition": claimed.definition,
        "context": {
            "execution_id": str(claimed.execution_id),
            "workflow_id": claimed.workflow_id,
            "organization_id": claimed.organization_id,
            "input": claimed.input,
            "secrets": secrets,
            # A resume: what it reuses, and whose Idempotency-Keys it sends.
            "reused_outputs": claimed.reused_outputs,
            "idempotency_base": claimed.idempotency_base,
        },
        "deadline_seconds": claimed.deadline_seconds,
    }
    stderr = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(
            _child_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            preexec_fn=_child_setup(os.getpid(), settings.RUNTIME_MEMORY_LIMIT_MB),
            cwd=str(settings.BASE_DIR),
            close_fds=True,
        )
    except OSError as exc:
        stderr.close()
        raise RuntimeSpawnError(f"could not start the isolated runtime: {exc}") from exc

    Execution.objects.filter(pk=claimed.execution_id, claim_token=claimed.claim_token).update(
        worker=Concat(F("worker"), Value(f" runtime={proc.pid}"))
    )
    try:
        _supervise(proc, claimed, payload, stderr)
    finally:
        _kill(proc)
        stderr.close()


def _heartbeat(claimed: Claimed) -> bool:
    """Refresh the heartbeat; a database hiccup is not the run's loss (True: keep going,
    the next beat reconnects)."""
    try:
        return with_db_retry(touch_heartbeat, claimed.execution_id, claimed.claim_token)
    except DatabaseError:
        logger.warning("heartbeat could not reach the database", exc_info=True)
        connection.close()
        return True


def _supervise(proc: subprocess.Popen, claimed: Claimed, payload: dict, stderr: Any) -> None:
    channel = _ChildChannel(proc)
    channel.send(payload)
    recorder = DatabaseStepRecorder(claimed)
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
            if channel.closed:
                try:
                    code = proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    _kill(proc)
                    code = proc.returncode
                _record_child_exit(claimed, code, ready, _stderr_tail(stderr))
                return


def _record_child_exit(claimed: Claimed, returncode: int | None, ready: bool, stderr_tail: str) -> None:
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        detail = f"runtime killed by {name}"
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


__all__ = ["ShutdownRequested", "dispatch", "run_inline", "run_isolated"]
