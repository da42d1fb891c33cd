"""The isolated runtime's child process: runs one definition and reports over a pipe.

Protocol (one JSON object per line): the supervisor writes the payload on stdin; the
child answers `ready`, then `step_start` (and waits for `step_ack`: only the supervisor
may record a step, and it may refuse), `step_finish`, and finally one of `result`,
`failed` or `claim_lost`. Only the supervisor writes to the database; the child sets
Django up (its actions read settings) but records nothing itself.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict
from typing import Any, TextIO


class PipeRecorder:
    def __init__(self, reader: TextIO, writer: TextIO):
        self.reader = reader
        self.writer = writer

    def send(self, message: dict) -> None:
        self.writer.write(json.dumps(message, default=str) + "\n")
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


def _watch_parent(parent_pid: int) -> None:
    """Belt and braces beside the parent-death signal: never finish a run unseen."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(137)
        time.sleep(0.5)


def main() -> None:
    parent_pid = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    # Keep the protocol on a private copy of stdout; anything an allow-listed callable
    # prints goes to stderr instead of corrupting the pipe.
    writer = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    reader = sys.stdin
    payload = json.loads(reader.readline())

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from failures.classifier import ORIGIN_PLATFORM, classify
    from workflows.engine import ClaimLost, RunContext, RunFailed, run_definition

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


if __name__ == "__main__":
    main()
