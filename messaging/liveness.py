"""A worker's consumer liveness: when its receive loop last completed a receive, per queue.

`celery inspect` does not work on SQS (no broadcast), so this is the operator's view of a
consumer. The transport (messaging.broker) reports into `STATE`; from it come

- metrics on the worker's exporter: `conveyor_consumer_last_receive_timestamp_seconds`
  and `conveyor_consumer_saturated` per queue, receive failures by reason, recoveries,
  recreated queues, failed acknowledgements (deploy/prometheus/alerts.yml alerts on them);
- `/healthz` (liveness: 503 only when the consumer is stalled) and `/readyz` (503 unless
  every queue receives) on the worker's exporter, for a Kubernetes probe;
- a row per worker in `observability.WorkerLiveness`, refreshed every
  CONVEYOR_WORKER_LIVENESS_INTERVAL_S, which `manage.py worker_health` reads;
- `WATCHDOG=1` to systemd (sd_notify) while the consumer is not stalled, when the worker
  runs under `WatchdogSec=`;
- the last resort: a thread outside the event loop makes the worker exit non-zero when
  the loop itself has not turned for CONVEYOR_CONSUMER_EXIT_AFTER_S (the transport's own
  watchdog runs on that loop and cannot help then); the process manager restarts it.

Three verdicts: `ok`; `degraded` — receives are attempted but none has succeeded for
CONVEYOR_CONSUMER_UNHEALTHY_AFTER_S (SQS is unreachable: restarting the worker would not
help and would kill its runs, so liveness stays 200); `stalled` — the loop makes no
attempts at all (restarting helps).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection

from messaging import metrics

logger = logging.getLogger("conveyor.liveness")

OK, DEGRADED, STALLED = "ok", "degraded", "stalled"
EXIT_CODE = 70  # EX_SOFTWARE: the process manager restarts the worker


@dataclass
class _Queue:
    consuming_since: float
    last_receive_wall: float | None = None
    last_receive: float | None = None
    last_attempt_end: float | None = None
    failures: int = 0
    last_failure: str = ""
    saturated: bool = False


class ConsumerState:
    """What this process's consumer did, per queue (monotonic clock, plus wall time for
    display). Written by the event loop, read by the liveness thread and the probe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queues: dict[str, _Queue] = {}
        self.last_loop_turn: float | None = None
        self.started = time.monotonic()

    def _queue(self, queue: str) -> _Queue:
        entry = self._queues.get(queue)
        if entry is None:
            entry = self._queues[queue] = _Queue(consuming_since=time.monotonic())
        return entry

    def consuming(self, queue: str) -> None:
        with self._lock:
            self._queue(queue)

    def received(self, queue: str) -> float | None:
        """A receive completed; returns how long receives had been failing, if they were."""
        now, wall = time.monotonic(), time.time()
        with self._lock:
            entry = self._queue(queue)
            was_failing = entry.failures > 0
            since = now - (entry.last_receive or entry.consuming_since)
            entry.last_receive, entry.last_receive_wall, entry.last_attempt_end = now, wall, now
            entry.failures, entry.saturated = 0, False
        metrics.LAST_RECEIVE.labels(queue=queue).set(wall)
        metrics.SATURATED.labels(queue=queue).set(0)
        return since if was_failing else None

    def failed(self, queue: str, reason: str) -> None:
        with self._lock:
            entry = self._queue(queue)
            entry.last_attempt_end = time.monotonic()
            entry.failures += 1
            entry.last_failure = reason
        metrics.RECEIVE_FAILURES.labels(queue=queue, reason=reason).inc()

    def saturated(self, queue: str, full: bool) -> None:
        with self._lock:
            entry = self._queue(queue)
            changed = entry.saturated != full
            entry.saturated = full
            if full:
                entry.last_attempt_end = time.monotonic()
        if changed:
            metrics.SATURATED.labels(queue=queue).set(1 if full else 0)

    def loop_turned(self) -> None:
        self.last_loop_turn = time.monotonic()

    def since_last_receive(self, queue: str) -> float | None:
        """Seconds since the queue's last completed receive (0 while saturated: not
        receiving is then the right thing to do)."""
        with self._lock:
            entry = self._queues.get(queue)
            if entry is None:
                return None
            if entry.saturated:
                return 0.0
            return time.monotonic() - (entry.last_receive or entry.consuming_since)

    def verdict(self) -> tuple[str, dict]:
        """(ok | degraded | stalled, the details a probe or an operator reads)."""
        now = time.monotonic()
        limit = unhealthy_after_s()
        status = OK
        queues = {}
        with self._lock:
            for name, entry in sorted(self._queues.items()):
                since_receive = 0.0 if entry.saturated else now - (entry.last_receive or entry.consuming_since)
                since_attempt = 0.0 if entry.saturated else now - (entry.last_attempt_end or entry.consuming_since)
                if since_attempt > limit:
                    state = STALLED
                elif since_receive > limit:
                    state = DEGRADED
                else:
                    state = OK
                queues[name] = {
                    "state": state,
                    "last_receive_at": _iso(entry.last_receive_wall),
                    "seconds_since_receive": round(since_receive, 1),
                    "failures_in_a_row": entry.failures,
                    "last_failure": entry.last_failure,
                    "saturated": entry.saturated,
                }
                status = _worse(status, state)
        loop_age = None if self.last_loop_turn is None else now - self.last_loop_turn
        if loop_age is not None and loop_age > limit:
            status = STALLED
        return status, {
            "status": status,
            "queues": queues,
            "seconds_since_loop_turned": None if loop_age is None else round(loop_age, 1),
        }


def _worse(a: str, b: str) -> str:
    order = {OK: 0, DEGRADED: 1, STALLED: 2}
    return a if order[a] >= order[b] else b


def _iso(wall: float | None) -> str | None:
    return None if wall is None else datetime.fromtimestamp(wall, UTC).isoformat()


def unhealthy_after_s() -> float:
    return settings.CONSUMER_UNHEALTHY_AFTER_S


STATE = ConsumerState()


# --------------------------------------------------------------------------------------
# the liveness thread: exit of last resort, systemd watchdog, the database row
# --------------------------------------------------------------------------------------


def _sd_notify(message: bytes) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError:
        logger.debug("sd_notify failed", exc_info=True)


class LivenessThread(threading.Thread):
    def __init__(self, node: str, state: ConsumerState = STATE):
        super().__init__(name="conveyor-liveness", daemon=True)
        self.node = node
        self.state = state
        self.stopping = threading.Event()
        self._last_row = 0.0
        usec = os.environ.get("WATCHDOG_USEC", "")
        self._sd_watchdog_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
        self._last_sd = 0.0

    def run(self) -> None:
        _sd_notify(b"READY=1")
        while not self.stopping.wait(1.0):
            try:
                self.tick()
            except Exception:
                logger.exception("liveness tick failed")
        self.write_row(stopped=True)

    def tick(self) -> None:
        now = time.monotonic()
        turned = self.state.last_loop_turn
        if turned is not None and now - turned > settings.CONSUMER_EXIT_AFTER_S and not self.stopping.is_set():
            self.exit(now - turned)
        status, _ = self.state.verdict()
        if self._sd_watchdog_s and status != STALLED and now - self._last_sd >= self._sd_watchdog_s:
            self._last_sd = now
            _sd_notify(b"WATCHDOG=1")
        if now - self._last_row >= settings.WORKER_LIVENESS_INTERVAL_S:
            self._last_row = now
            self.write_row()

    def exit(self, frozen_for: float) -> None:
        message = (
            f"the worker's event loop has not turned for {frozen_for:.0f} s "
            f"(CONVEYOR_CONSUMER_EXIT_AFTER_S={settings.CONSUMER_EXIT_AFTER_S:g}): exiting with code {EXIT_CODE} "
            "so the process manager restarts it"
        )
        logger.critical(message, extra={"event": "consumer_exit"})
        self.write_row(stopped=True, status=STALLED)
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:
                pass
        os._exit(EXIT_CODE)

    def write_row(self, *, stopped: bool = False, status: str | None = None) -> None:
        # Not at the top: kombu loads this module with the transport, and in celery beat
        # that may happen before Django's app registry is ready.
        from messaging.models import WorkerLiveness

        verdict, details = self.state.verdict()
        try:
            connection.close_if_unusable_or_obsolete()
            WorkerLiveness.objects.update_or_create(
                node=self.node[:200],
                defaults={
                    "hostname": socket.gethostname()[:200],
                    "pid": os.getpid(),
                    "status": "stopped" if stopped and status is None else (status or verdict),
                    "details": json.loads(json.dumps(details)),
                    "updated_at": datetime.now(UTC),
                },
            )
        except Exception as exc:
            # The database may be what is down; the probe and the metrics still answer.
            logger.warning("could not record the worker's liveness: %s", exc)
            try:
                connection.close()
            except Exception:
                pass


_threads: dict[str, LivenessThread] = {}


def start(node: str) -> LivenessThread:
    thread = _threads.get("thread")
    if thread is None:
        thread = _threads["thread"] = LivenessThread(node)
        thread.start()
    return thread


def stop() -> None:
    thread = _threads.pop("thread", None)
    if thread is not None:
        thread.stopping.set()
        thread.join(timeout=5)


# --------------------------------------------------------------------------------------
# the probe, served beside the metrics on the worker's exporter
# --------------------------------------------------------------------------------------

PROBE_PATHS = ("/healthz", "/readyz")


def probe(path: str) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of a probe: /healthz fails only when stalled, /readyz
    unless every queue receives."""
    status, details = STATE.verdict()
    failing = status == STALLED if path == "/healthz" else status != OK
    return (503 if failing else 200), json.dumps(details).encode()
