"""The supervisor never buffers without bound what its isolated child writes: a protocol line
longer than workflows.limits.pipe_message_limit() (which a child keeping the engine's output
limits never reaches) stops the reading, the child is killed, and the run fails as a user
error naming the step that was running and the limit. Lines split over many reads are put
together once."""

import os
import threading

import pytest

from executions.models import Execution
from messaging import messages
from pipeline import runtimes
from pipeline.consume import Outcome, consume
from tests.factories import make_execution, make_workflow
from workflows import limits


class _PipeChild:
    def __init__(self, read_fd: int):
        self.stdout = os.fdopen(read_fd, "rb")


def _channel(limit: int) -> tuple[runtimes._ChildChannel, int]:
    read_fd, write_fd = os.pipe()
    return runtimes._ChildChannel(_PipeChild(read_fd), max_line_bytes=limit), write_fd


def _write_in_background(write_fd: int, data: bytes) -> threading.Thread:
    # A pipe holds 64 KiB: the writer must run beside the reader, as the child does.
    def write() -> None:
        with os.fdopen(write_fd, "wb") as writer:
            try:
                writer.write(data)
            except BrokenPipeError:
                pass

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _drain(channel: runtimes._ChildChannel) -> list[dict]:
    received: list[dict] = []
    for _ in range(1000):
        batch = channel.receive(timeout=0.2)
        received.extend(batch)
        if channel.closed or (not batch and received):
            break
    return received


def test_a_line_split_over_many_reads_is_received_whole():
    channel, write_fd = _channel(limit=10 * 1024 * 1024)
    line = b'{"type": "result", "output": "' + b"x" * 300_000 + b'"}\n'
    writer = _write_in_background(write_fd, line + b'{"type": "ready"}\n')
    received = _drain(channel)
    writer.join(timeout=10)
    assert [message["type"] for message in received] == ["result", "ready"]
    assert len(received[0]["output"]) == 300_000
    assert not channel.overflowed


def test_a_line_longer_than_the_bound_stops_the_reading():
    channel, write_fd = _channel(limit=100_000)
    _write_in_background(write_fd, b'{"type": "result", "output": "' + b"x" * 400_000)
    received = _drain(channel)
    channel.child.stdout.close()  # as the supervisor's kill does: the writer stops
    assert received == []
    assert channel.overflowed and channel.closed
    assert channel.pending == []  # nothing kept of the overlong line


@pytest.mark.django_db(transaction=True)
def test_an_isolated_run_whose_child_overflows_the_pipe_fails_as_a_user_error_naming_the_step(monkeypatch):
    # The engine keeps outputs under their limits, so only a bound smaller than an honest
    # message can show the supervisor's side: lower it for this supervisor only.
    monkeypatch.setattr(runtimes, "pipe_message_limit", lambda: 4096)
    monkeypatch.setattr(limits, "pipe_message_limit", lambda: 4096)
    definition = {
        "steps": [
            {"id": "small", "action": "transform", "config": {"output": "ok"}},
            {"id": "large", "action": "transform", "config": {"output": "y" * 50_000}},
        ]
    }
    execution = make_execution(make_workflow(None, definition=definition), runtime="isolated")
    assert consume(messages.build(execution.id, execution.dispatch_key), hostname="test") == Outcome.CLAIMED
    execution = Execution.objects.get(pk=execution.pk)
    assert execution.status == "error"
    assert execution.error_type == "user"
    assert "'large'" in execution.error_message
    assert "4096 bytes" in execution.error_message
