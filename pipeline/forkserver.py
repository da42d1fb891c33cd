"""The isolated runtime's fork server (docs/decisions/0013).

One per pool process, started by it with `subprocess` (a prefork pool process may not use
multiprocessing) from a sealed environment (`sealed_environment`: an allow-list, not the
worker's), with the parent-death signal set. It imports the engine and every action once,
without Django settings and without a database, then forks one fresh child per run: the
run pays for a fork, not for an interpreter start and `django.setup()`.

Control channel: a SOCK_SEQPACKET socket pair, one JSON message per packet.
    supervisor → server  {"op": "fork", "memory_limit_mb": N, "supervisor_pid": P}
                         with three file descriptors attached (SCM_RIGHTS): the read end
                         of the child's input pipe, the write end of its output pipe,
                         and its stderr file
    server → supervisor  {"ready": true} once, after the imports
                         {"pid": N} or {"error": "..."} in answer to each fork
                         {"exit": N, "code": C} when child N ended (C < 0: killed by -C)

The death chain: the server has PR_SET_PDEATHSIG=SIGKILL towards its pool process, each
child the same towards the server, and each child also watches both (its parent pid and
a pidfd of the supervisor); the server exits when its socket closes. Whichever of them
dies, no child goes on to finish a run unseen.

This module's top level imports nothing of Django: the supervisor half (`ForkServer`) is
given what it needs by pipeline/runtimes.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import importlib
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

PR_SET_PDEATHSIG = 1
MAX_MESSAGE = 65536
# The only variables the fork server (and so every child) gets from the worker's
# environment. Nothing that names a database, a key, a password or a cloud credential.
ENVIRONMENT_ALLOW_LIST = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - non-glibc platforms
    _libc = None


class ForkServerError(Exception):
    """The fork server could not be started, refused a fork, or is gone."""


def sealed_environment(base_dir: str, source: dict[str, str] | None = None) -> dict[str, str]:
    """The runtime's whole environment: the allow-listed variables of `source` (the
    worker's), and PYTHONPATH naming the project (and nothing the worker had)."""
    source = dict(os.environ if source is None else source)
    env = {name: source[name] for name in ENVIRONMENT_ALLOW_LIST if name in source}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PYTHONPATH"] = base_dir
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def die_with_parent(parent_pid: int) -> None:
    """In a freshly forked process: SIGKILL when the parent dies, and go now if it already
    did (before prctl took effect)."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(137)


# --- supervisor side --------------------------------------------------------------------
class ForkServer:
    """The pool process's handle on its fork server."""

    def __init__(self, *, python: str, base_dir: str, preload: Sequence[str], start_timeout: float):
        self.config = {"python": python, "base_dir": base_dir, "preload": list(preload), "start_timeout": start_timeout}
        self.python = python
        self.base_dir = base_dir
        self.preload = list(preload)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.owner = 0
        self.exits: dict[int, int] = {}
        self.forgotten: set[int] = set()  # children whose exit nobody will ask for

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return (
            self.proc is not None and self.sock is not None and self.owner == os.getpid() and self.proc.poll() is None
        )

    def ensure(self) -> None:
        """Start the server unless one of this process is running (a dead one is replaced)."""
        if not self.alive():
            self.stop()
            self.start()

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        try:
            self.proc = subprocess.Popen(
                [self.python, "-m", "pipeline.forkserver", str(theirs.fileno()), *self.preload],
                env=sealed_environment(self.base_dir),
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                close_fds=True,
                preexec_fn=lambda: die_with_parent(parent),
            )
        except OSError as exc:
            ours.close()
            raise ForkServerError(f"could not start the fork server: {exc}") from exc
        finally:
            theirs.close()
        self.sock, self.owner, self.exits, self.forgotten = ours, parent, {}, set()
        message = self._receive(self.start_timeout, want=lambda m: "ready" in m)
        if message is None:
            code = self.proc.poll()
            self.stop()
            why = f"exited with status {code}" if code is not None else f"not ready within {self.start_timeout:g}s"
            raise ForkServerError(f"the fork server {why}")

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            if self.owner == os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
            self.proc = None

    def fork(self, fds: Sequence[int], *, memory_limit_mb: int, timeout: float) -> int:
        """A new child holding `fds` (input read end, output write end, stderr); its pid."""
        assert self.sock is not None
        request = {"op": "fork", "memory_limit_mb": memory_limit_mb, "supervisor_pid": os.getpid()}
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], list(fds))
        except OSError as exc:
            self.stop()
            raise ForkServerError(f"the fork server is gone: {exc}") from exc
        reply = self._receive(timeout, want=lambda m: "pid" in m or "error" in m)
        if reply is None:
            self.stop()
            raise ForkServerError("the fork server did not answer a fork request")
        if "error" in reply:
            raise ForkServerError(f"the fork server could not fork: {reply['error']}")
        return int(reply["pid"])

    def exit_code(self, pid: int, timeout: float) -> int | None:
        """Child `pid`'s exit status as subprocess reports it (negative: the signal), or
        None if it is not known within `timeout` (the server died, or the child lives)."""
        if pid in self.exits:
            return self.exits.pop(pid)
        if self._receive(timeout, want=lambda m: m.get("exit") == pid) is None:
            return None
        return self.exits.pop(pid, None)

    def forget(self, pid: int) -> None:
        """Nobody will ask for `pid`'s exit status: drop it when it comes (the run is over
        and written; waiting for the notice would only delay the pool process)."""
        if self.exits.pop(pid, None) is None:
            self.forgotten.add(pid)

    def _receive(self, timeout: float, want: Callable[[dict], bool]) -> dict | None:
        """Read messages until one `want`s it (exit notices are kept on the way)."""
        deadline = time.monotonic() + timeout
        while self.sock is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], min(left, 0.5))
            if not ready:
                if self.proc is not None and self.proc.poll() is not None:
                    self.stop()  # died without closing cleanly
                    return None
                continue
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                self.stop()
                return None
            message = json.loads(data)
            if "exit" in message:
                pid = int(message["exit"])
                if pid in self.forgotten:
                    self.forgotten.discard(pid)
                else:
                    self.exits[pid] = int(message["code"])
            if want(message):
                return message
        return None


# --- server side ------------------------------------------------------------------------
def _preload(modules: Sequence[str]) -> None:
    """Import the engine and every action now, once, so each fork finds them loaded."""
    from workflows.actions.registry import BUILTIN_ACTIONS

    importlib.import_module("pipeline.runtime_child")
    for dotted in BUILTIN_ACTIONS.values():
        importlib.import_module(dotted.rpartition(".")[0])
    for name in modules:
        # Allow-listed callables' modules: best effort (one needing Django fails its step
        # when it runs, as it would have anyway).
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        with contextlib.suppress(OSError):
            sock.send(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}).encode())


def _become_child(request: dict, fds: list[int], server_pid: int, keep: list[socket.socket]) -> None:
    """In the forked child: arrange the fds, seal, limit, run. Never returns."""
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for sock in keep:
            sock.detach()  # closed below with every other descriptor, never reused by Python
        die_with_parent(server_pid)
        reader, writer, stderr = fds
        # 0: the input pipe; 1 and 2: the stderr file (a print cannot corrupt the
        # protocol); 3: the output pipe. Nothing else stays open.
        os.dup2(reader, 0)
        os.dup2(stderr, 1)
        os.dup2(stderr, 2)
        os.dup2(writer, 3)
        os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        limit_mb = int(request.get("memory_limit_mb") or 0)
        if limit_mb:
            limit = limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from pipeline.runtime_child import run_forked

        run_forked(0, 3, int(request["supervisor_pid"]), server_pid)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(sock: socket.socket, parent_pid: int) -> None:
    # What is loaded now is shared by every child: move it out of the collector's reach,
    # so a collection in a child does not write to (and so copy) every page of it.
    gc.collect()
    gc.freeze()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    sock.send(json.dumps({"ready": True}).encode())
    while True:
        try:
            ready, _, _ = select.select([sock.fileno(), wake_r], [], [], 1.0)
        except InterruptedError:
            continue
        if os.getppid() != parent_pid:
            return  # the pool process is gone (the death signal should have come first)
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
        _reap(sock)
        if sock.fileno() not in ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 3)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return
        if not data:
            return  # the supervisor closed its end: no more runs
        try:
            request = json.loads(data)
            if request.get("op") != "fork" or len(fds) != 3:
                raise ValueError(f"bad request {request!r} with {len(fds)} descriptors")
            pid = os.fork()
        except (OSError, ValueError) as exc:
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"error": str(exc)}).encode())
            continue
        if pid == 0:
            os.close(wake_r)
            os.close(wake_w)
            _become_child(request, fds, os.getppid(), [sock])
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"pid": pid}).encode())


def main() -> None:
    parent_pid = os.getppid()
    # The supervisor decides this process's life: a Ctrl-C meant for the worker is not ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    _preload(sys.argv[2:])
    serve(sock, parent_pid)


if __name__ == "__main__":
    main()
