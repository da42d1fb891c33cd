"""Run status notifications for the API's wait endpoint (docs/decisions/0016).

The status writer (executions.transitions) sends `NOTIFY conveyor_run_status, '<run id>'`
in the very statement that writes a terminal status, so PostgreSQL delivers it when, and
only if, that status commits. Each web process holds one listener connection of its own
(psycopg, autocommit, outside Django's connection handling), in one daemon thread,
shared by every waiting request: a registry of run id -> the waiting requests' events.
The thread waits for notifications with a timeout (never without one), so it notices a
stop and a dropped connection; a dropped connection is re-opened with back-off, and
every waiter is then woken to re-read its run, since a notification sent while nobody
listened is lost.

A waiter that found its run in progress subscribes, then reads the run once more, so a
terminal write that commits between its first read and the subscription is seen by that
read, and one that commits after it is notified.

SQLite has no LISTEN: there (and with CONVEYOR_WAIT_NOTIFY off, and while the listener
is reconnecting) a waiter re-reads the run every CONVEYOR_WAIT_POLL_S.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections

RUN_STATUS_CHANNEL = "conveyor_run_status"
LISTENER_APPLICATION_NAME = "conveyor-wait-listener"
# How long the thread waits for a notification before it looks at its stop flag again.
SELECT_TIMEOUT_S = 1.0
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0

logger = logging.getLogger("conveyor.notify")


@dataclass
class Waiter:
    """One waiting request: `wait()` returns when its run was notified, when the
    listener (re)connected, or after the interval, whichever comes first."""

    listener: RunStatusListener | None
    event: threading.Event = field(default_factory=threading.Event)

    @property
    def interval(self) -> float:
        if self.listener is not None and self.listener.connected.is_set():
            return settings.CONVEYOR_WAIT_RECHECK_S
        return settings.CONVEYOR_WAIT_POLL_S

    def wait(self, timeout: float) -> bool:
        """True when woken by a notification (or a reconnect), False after `timeout`."""
        woken = self.event.wait(max(0.0, min(timeout, self.interval)))
        self.event.clear()
        return woken


class RunStatusListener:
    """The process's one LISTEN connection and the registry of its waiters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.backend_pid: int | None = None  # the listener connection's server process
        self.connects = 0

    @contextlib.contextmanager
    def subscribe(self, run_id: object) -> Iterator[Waiter]:
        waiter = Waiter(self)
        key = str(run_id)
        with self._lock:
            self._waiters.setdefault(key, set()).add(waiter.event)
            self._ensure_thread()
        try:
            yield waiter
        finally:
            with self._lock:
                events = self._waiters.get(key)
                if events is not None:
                    events.discard(waiter.event)
                    if not events:
                        del self._waiters[key]

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener connection and end its thread (a test's database is dropped
        after this; a web process simply exits)."""
        thread = self._thread
        self._stop.set()
        if thread is not None and thread.is_alive():
            thread.join(timeout)
        self._thread = None
        self._stop = threading.Event()

    def _ensure_thread(self) -> None:
        # Started on first use, so after a web server's fork; a forked child starts its own.
        if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
            self._pid = os.getpid()
            self.connected.clear()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name="wait-listener", daemon=True)
            self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        backoff = BACKOFF_MIN_S
        while not stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {RUN_STATUS_CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    self.connects += 1
                    self.connected.set()
                    backoff = BACKOFF_MIN_S
                    self._wake_all()  # what was notified while nobody listened is lost: re-read
                    while not stop.is_set():
                        for notification in conn.notifies(timeout=SELECT_TIMEOUT_S):
                            self._wake(notification.payload)
            except Exception:
                if stop.is_set():
                    break
                logger.warning(
                    "wait listener connection lost; reconnecting in %.1fs",
                    backoff,
                    exc_info=True,
                    extra={"event": "wait_listener_lost"},
                )
                self.connected.clear()
                self._wake_all()  # back to polling until the listener is back
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        self.connected.clear()
        self.backend_pid = None

    def _connect(self):
        import psycopg

        params = connections["default"].get_connection_params()
        for django_only in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(django_only, None)
        params["application_name"] = LISTENER_APPLICATION_NAME
        return psycopg.connect(**params, autocommit=True)

    def _wake(self, run_id: str) -> None:
        with self._lock:
            events = list(self._waiters.get(run_id, ()))
        for event in events:
            event.set()

    def _wake_all(self) -> None:
        with self._lock:
            events = [event for events in self._waiters.values() for event in events]
        for event in events:
            event.set()


listener = RunStatusListener()


def notifications_available() -> bool:
    return settings.CONVEYOR_WAIT_NOTIFY and connections["default"].vendor == "postgresql"


@contextlib.contextmanager
def waiting_on(run_id: object) -> Iterator[Waiter]:
    """Subscribe to `run_id`'s terminal notification (a poll where there is none)."""
    if not notifications_available():
        yield Waiter(None)
        return
    with listener.subscribe(run_id) as waiter:
        yield waiter
