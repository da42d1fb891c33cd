"""The isolated runtime's child process: runs one definition and reports over a pipe.

Protocol (one JSON object per line): the supervisor writes the payload (definition,
context with input and the referenced secrets, deadline, runtime settings); the child
answers `ready`, then `step_start` (and waits for `step_ack`: only the supervisor may
record a step, and it may refuse), `step_finish`, and finally one of `result`, `failed` or
`claim_lost`.

The child is sealed (docs/decisions/0013): it never sets Django up nor imports the
platform's settings, holds no database connection and no platform secret; what the
actions need of the settings arrives in the payload (workflows/runtime_settings.py).
It starts either forked from the fork server (pipeline/forkserver.py, `run_forked`) or as
a fresh interpreter (`python -m pipeline.runtime_child`, CONVEYOR_ISOLATED_START=spawn).
"""

from __future__ import annotations

import json
import os
import select
import sys
import threading
import time
from dataclasses import asdict
from typing import Any, BinaryIO

from failures.classifier import ORIGIN_PLATFORM, classify
from workflows.engine import ClaimLost, RunContext, RunFailed, run_definition
from workflows.runtime_settings import settings as runtime_settings


class PipeRecorder:
    def __init__(self, reader: BinaryIO, writer: BinaryIO):
        self.reader = reader
        self.writer = writer

    def send(self, message: dict) -> None:
        self.writer.write(json.dumps(message, default=str).encode() + b"\n")
        self.writer.flush()

    def start_step(self, step_id: str, action: str, position: int) -> bool:
        self.send({"type": "step_start", "step_id": step_id, "action": action, "position": position})
        line = self.reader.readline()
        if not line:
            os._exit(137)  # the supervisor is gone
        return bool(json.loads(line).get("ok"))

    def finish_step(
        self,
        step_id: str,
        *,
        status: str,
        output: Any = None,
        error_type: str = "",
        error_message: str = "",
        **extra: Any,
    ) -> None:
        self.send(
            {
                "type": "step_finish",
                "step_id": step_id,
                "status": status,
                "output": output,
                "error_type": error_type,
                "error_message": error_message,
                **extra,  # attempts (a retry policy), reused (a resume)
            }
        )


def _watch(parent_pid: int, supervisor_pid: int) -> None:
    """Belt and braces beside the parent-death signal: never finish a run unseen. The
    parent (the fork server, or the supervisor itself when spawned) must stay ours, and
    the supervisor must stay alive (a pidfd turns readable when it exits)."""
    pidfd = -1
    if supervisor_pid != parent_pid:
        try:
            pidfd = os.pidfd_open(supervisor_pid)
        except OSError:
            os._exit(137)  # already gone
    while True:
        if os.getppid() != parent_pid:
            os._exit(137)
        if pidfd >= 0:
            ready, _, _ = select.select([pidfd], [], [], 0.5)
            if ready:
                os._exit(137)
        else:
            time.sleep(0.5)


def serve(reader: BinaryIO, writer: BinaryIO) -> None:
    """Read one payload, run it, report. Never touches a database."""
    line = reader.readline()
    if not line:
        return  # the supervisor went away before handing the run over
    payload = json.loads(line)
    runtime_settings.install(payload["settings"])
    recorder = PipeRecorder(reader, writer)
    recorder.send({"type": "ready"})
    context = RunContext(
        deadline=time.monotonic() + float(payload["deadline_seconds"]),
        **payload["context"],
    )
    try:
        output = run_definition(payload["definition"], context, recorder)
    except RunFailed as failure:
        recorder.send({"type": "failed", "classification": asdict(failure.classification)})
    except ClaimLost:
        recorder.send({"type": "claim_lost"})
    except MemoryError:
        recorder.send({"type": "failed", "classification": asdict(classify(MemoryError("runtime out of memory")))})
    except Exception as exc:
        recorder.send({"type": "failed", "classification": asdict(classify(exc, ORIGIN_PLATFORM))})
    else:
        recorder.send({"type": "result", "output": output})
    writer.flush()


def run_forked(reader_fd: int, writer_fd: int, supervisor_pid: int, forkserver_pid: int) -> None:
    """The forked child's body (fds already arranged by the fork server)."""
    threading.Thread(target=_watch, args=(forkserver_pid, supervisor_pid), daemon=True).start()
    with os.fdopen(reader_fd, "rb") as reader, os.fdopen(writer_fd, "wb") as writer:
        serve(reader, writer)


def main() -> None:
    parent_pid = os.getppid()
    threading.Thread(target=_watch, args=(parent_pid, parent_pid), daemon=True).start()
    # Keep the protocol on a private copy of stdout; anything an allow-listed callable
    # prints goes to stderr instead of corrupting the pipe.
    writer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, writer)


if __name__ == "__main__":
    main()
