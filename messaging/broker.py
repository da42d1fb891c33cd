"""Conveyor's SQS transport: kombu's, made to survive every shape of broker outage.

Celery is pointed at it with `broker_transport` (config/settings.py); the URL stays
`sqs://`. It is a subclass, not a patch: kombu's classes are untouched.

What kombu 5.7's SQS transport gets wrong, and what this one does instead
(docs/decisions/0007-broker-outages.md has the upstream issues):

- Its async HTTP client (pycurl) never sets a timeout on a transfer: a long poll sent on
  a connection that nothing answers any more (a black hole, a half-open connection left
  by a failover) waits for ever, its callback never fires, and the receive loop of that
  queue stops for good with nothing logged. Here every transfer has a connect timeout and
  a total timeout a little longer than the long-poll wait.
- A failed receive reaches kombu's callbacks as `[]` (5xx, timeouts, refused or reset
  connections), which crashes `_on_messages_ready`, or as an exception (4xx such as a
  missing queue) that escapes into the worker's event loop and stops the worker. Here a
  receive ends in exactly one of two ways, messages or a `ReceiveFailed`, and either way
  the next poll of that queue is scheduled (with a back-off after failures).
- Nothing watches the loop. Here a timer on the worker's event loop checks every queue:
  a receive in flight for longer than the long-poll wait plus a margin, a queue with no
  receive in flight and none scheduled, or no completed receive for that long, makes the
  channel drop its HTTP client (and with it every connection) and poll again. A thread
  outside the loop (messaging.liveness) is the last resort: if the loop itself stops
  turning, the worker exits non-zero for its process manager.
- A queue that does not exist (a restarted SQS server, a deleted queue) is created again
  with its configured attributes, on receive, publish and dead-letter alike, unless
  CONVEYOR_SQS_CREATE_QUEUES=0; then one clear error names the queue and the setting, and
  the consumer keeps polling until someone creates it.
- A failed DeleteMessage (the acknowledgement on acceptance) is logged and counted instead
  of escaping into the event loop: the message comes back after its visibility timeout and
  the claim's compare-and-swap drops it as a duplicate (docs/decisions/0001).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from django.conf import settings
from kombu.asynchronous.aws.sqs.connection import AsyncSQSConnection
from kombu.asynchronous.http.curl import CurlClient
from kombu.transport import SQS
from vine import promise

from failures import faults
from messaging import liveness, metrics
from messaging.queue import QueueMissing, ensure_queues

logger = logging.getLogger("conveyor.broker")

try:
    import pycurl
except ImportError:  # pragma: no cover - kombu's SQS transport cannot run without it either
    pycurl = None

_MISSING_QUEUE_MARKERS = ("NonExistentQueue", "QueueDoesNotExist")
WATCHDOG_TICK_S = 1.0
BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 5.0


def stall_after_s() -> float:
    """How long a consumer may go without completing a receive before it recovers."""
    return settings.SQS_WAIT_TIME_SECONDS + settings.CONSUMER_STALL_MARGIN_S


def receive_timeout_s() -> float:
    """The whole of one receive (connect, long poll, answer): a little over the long poll."""
    return settings.SQS_WAIT_TIME_SECONDS + settings.CONSUMER_STALL_MARGIN_S / 2


def is_missing_queue(text: str) -> bool:
    return any(marker in text for marker in _MISSING_QUEUE_MARKERS)


def is_missing_queue_error(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        return is_missing_queue(str(exc.response.get("Error", {}).get("Code", ""))) or is_missing_queue(str(exc))
    return isinstance(exc, SQS.DoesNotExistQueueException) or is_missing_queue(str(exc))


@dataclass(frozen=True)
class ReceiveFailed:
    """A receive that ended without an answer from SQS (what kombu passes on as `[]`)."""

    reason: str  # bounded: timeout, connection, http_5xx, http_4xx, missing_queue, error
    detail: str


def _failure_reason(status: int, text: str) -> str:
    if is_missing_queue(text):
        return "missing_queue"
    if status == 599:
        lowered = text.lower()
        return "timeout" if "timed out" in lowered or "timeout" in lowered else "connection"
    if 500 <= status < 600:
        return "http_5xx"
    if 400 <= status < 500:
        return "http_4xx"
    return "error"


class TimedCurlClient(CurlClient):
    """kombu's pycurl client with a connect timeout and a total timeout on every transfer."""

    def __init__(self, hub, *, connect_timeout: float, total_timeout: float):
        super().__init__(hub)
        self.connect_timeout_ms = max(1, int(connect_timeout * 1000))
        self.total_timeout_ms = max(1, int(total_timeout * 1000))

    def _setup_request(self, curl, request, buffer, headers, _pycurl=pycurl):
        super()._setup_request(curl, request, buffer, headers)
        curl.setopt(_pycurl.CONNECTTIMEOUT_MS, self.connect_timeout_ms)
        curl.setopt(_pycurl.TIMEOUT_MS, self.total_timeout_ms)
        curl.setopt(_pycurl.NOSIGNAL, 1)  # timeouts without SIGALRM: the worker owns its signals

    # A timer the client set before it was closed may still fire: nothing is left to check.
    def _timeout_check(self, *args, **kwargs):
        if not self._closed:
            super()._timeout_check(*args, **kwargs)

    def _on_event(self, *args, **kwargs):
        if not self._closed:
            super()._on_event(*args, **kwargs)

    def abandon(self) -> None:
        """Drop every transfer in flight and every connection: none of them is ever
        delivered, and the sockets leave the event loop before they are closed."""
        if self._closed:
            return
        self._pop_from_hub()
        self._fds.clear()
        for curl in self._curls:
            if curl not in self._free_list:
                try:
                    self._multi.remove_handle(curl)
                except pycurl.error:
                    pass
        self._pending.clear()
        self.close()


class ResilientAsyncSQSConnection(AsyncSQSConnection):
    """A receive never raises into the event loop: a failure is a `ReceiveFailed` value."""

    def _on_list_ready(self, parent, markers, operation, response):
        try:
            result = super()._on_list_ready(parent, markers, operation, response)
        except Exception as exc:
            text = str(exc)
            return ReceiveFailed(_failure_reason(getattr(response, "status", 0) or 0, text), text[:500])
        if isinstance(result, list):  # kombu's answer for a timeout, a 5xx or a dead connection
            status = getattr(response, "status", 0) or 0
            text = f"HTTP {status} {getattr(response, 'reason', '') or ''}".strip()
            return ReceiveFailed(_failure_reason(status, text), text[:500])
        return result


@dataclass
class _Receive:
    queue: str
    started: float = field(default_factory=time.monotonic)


class Channel(SQS.Channel):
    def __init__(self, *args, **kwargs):
        self._receives: dict[str, _Receive] = {}
        self._next_poll: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._http: TimedCurlClient | None = None
        self._watchdog = None
        self._watch_ticks = 0
        self._last_recovery = time.monotonic()
        self._missing_logged_at: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    # -- clients ---------------------------------------------------------------------
    def asynsqs(self, queue=None):
        if self.predefined_queues:  # not how Conveyor runs; kombu's own path
            return super().asynsqs(queue=queue)
        if self._asynsqs is None:
            self._http = TimedCurlClient(
                self.hub, connect_timeout=settings.SQS_CONNECT_TIMEOUT_S, total_timeout=receive_timeout_s()
            )
            attributes = self.get_message_attributes
            self._asynsqs = ResilientAsyncSQSConnection(
                sqs_connection=self.sqs(queue=queue),
                region=self.region,
                http_client=self._http,
                message_system_attribute_names=attributes.get("MessageSystemAttributeNames"),
                message_attribute_names=attributes.get("MessageAttributeNames"),
            )
        return self._asynsqs

    def _drop_clients(self) -> None:
        """Forget the HTTP client (every connection with it) and the boto3 client."""
        http, self._http = self._http, None
        self._asynsqs = None
        self._sqs = None
        if http is not None:
            try:
                http.abandon()
            except Exception:  # a broken client must not stop its replacement
                logger.exception("could not close the SQS HTTP client")

    # -- queues ----------------------------------------------------------------------
    def _new_queue(self, queue, **kwargs):
        if settings.SQS_CREATE_QUEUES:
            return super()._new_queue(queue, **kwargs)
        try:
            return self._resolve_queue_url(queue)
        except SQS.DoesNotExistQueueException:
            raise QueueMissing(self.canonical_queue_name(queue)) from None

    def _forget_queue(self, queue: str) -> None:
        self._queue_cache.pop(self.canonical_queue_name(queue), None)

    def _recreate_queue(self, queue: str) -> bool:
        """After SQS said the queue is gone: create it again (and the platform's other
        queues, which went with it), or say clearly why not. True if it exists now."""
        name = self.canonical_queue_name(queue)
        self._forget_queue(queue)
        if not settings.SQS_CREATE_QUEUES:
            now = time.monotonic()
            if now - self._missing_logged_at.get(name, -1e9) > 60:
                self._missing_logged_at[name] = now
                logger.error("%s", QueueMissing(name), extra={"event": "sqs_queue_missing", "queue": name})
            return False
        try:
            ensure_queues(refresh=True)
            self._new_queue(queue)
        except Exception as exc:
            logger.warning(
                "SQS queue %s is missing and could not be created yet: %s",
                name,
                exc,
                extra={"event": "sqs_queue_create_failed", "queue": name},
            )
            return False
        metrics.QUEUES_RECREATED.labels(queue=_label(self, queue)).inc()
        logger.warning(
            "SQS queue %s was missing: created again", name, extra={"event": "sqs_queue_recreated", "queue": name}
        )
        return True

    def _put(self, queue, message, **kwargs):
        """Send, in at most CONVEYOR_SQS_MAX_ATTEMPTS attempts (the boto3 client itself
        makes one): a pooled connection an outage left half-open answers nothing, so every
        attempt after a connection failure starts on a fresh client, with new connections.
        A send that did arrive after all is only a duplicate message: the claim drops it."""
        for attempt in range(1, settings.SQS_MAX_ATTEMPTS + 1):
            try:
                return self._put_once(queue, message, **kwargs)
            except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError, ConnectionClosedError):
                self._sqs = None
                if attempt == settings.SQS_MAX_ATTEMPTS:
                    raise

    def _put_once(self, queue, message, **kwargs):
        try:
            return super()._put(queue, message, **kwargs)
        except Exception as exc:
            if not is_missing_queue_error(exc) or isinstance(exc, QueueMissing):
                raise
            if not self._recreate_queue(queue):
                raise QueueMissing(self.canonical_queue_name(queue)) from exc
        return super()._put(queue, message, **kwargs)

    # -- acknowledgement -------------------------------------------------------------
    def basic_ack(self, delivery_tag, multiple=False):
        try:
            return super().basic_ack(delivery_tag, multiple=multiple)
        except SQS.AccessDeniedQueueException:
            raise
        except (BotoCoreError, ClientError, OSError) as exc:
            # kombu released the delivery already; SQS redelivers the message after its
            # visibility timeout and the claim CAS drops the copy as a duplicate.
            metrics.ACK_FAILURES.inc()
            logger.warning(
                "could not acknowledge a message (DeleteMessage failed: %s): it comes back after its visibility "
                "timeout and is dropped as a duplicate",
                exc,
                extra={"event": "sqs_ack_failed"},
            )

    # -- the receive loop ------------------------------------------------------------
    def basic_consume(self, queue, no_ack, *args, **kwargs):
        result = super().basic_consume(queue, no_ack, *args, **kwargs)
        liveness.STATE.consuming(_label(self, queue))
        if self.hub and self._watchdog is None:
            self._watchdog = self.hub.call_repeatedly(WATCHDOG_TICK_S, self._watch)
        return result

    def _schedule_queue(self, queue):
        self._next_poll.pop(queue, None)
        if queue not in self._active_queues or queue in self._receives:
            return  # one receive in flight per queue
        if not self.qos.can_consume():
            liveness.STATE.saturated(_label(self, queue), True)
            self._loop1(queue)
            return
        liveness.STATE.saturated(_label(self, queue), False)
        receive = self._receives[queue] = _Receive(queue)
        try:
            queue_url = self._new_queue(queue)
            name = self.canonical_queue_name(queue)
            self.asynsqs(queue=name).receive_message(
                name,
                queue_url,
                number_messages=self._get_message_estimate(),
                wait_time_seconds=self.wait_time_seconds,
                callback=promise(self._on_received, (receive, queue_url)),
            )
        except Exception as exc:
            reason = "missing_queue" if is_missing_queue_error(exc) else "error"
            self._on_received(receive, None, ReceiveFailed(reason, f"{type(exc).__name__}: {exc}"[:500]))

    def _on_received(self, receive: _Receive, queue_url: str | None, result) -> None:
        queue = receive.queue
        if self._receives.get(queue) is not receive:
            return  # abandoned by the watchdog: a newer receive owns the queue
        del self._receives[queue]
        label = _label(self, queue)
        if isinstance(result, ReceiveFailed) or not isinstance(result, dict):
            failure = result if isinstance(result, ReceiveFailed) else ReceiveFailed("error", repr(result)[:500])
            self._receive_failed(queue, label, failure)
            return
        recovered_after = liveness.STATE.received(label)
        failures = self._failures.pop(queue, 0)
        if failures:
            logger.warning(
                "SQS receive on %s works again after %.1f s and %d failed attempt(s)",
                label,
                recovered_after or 0.0,
                failures,
                extra={"event": "sqs_receive_recovered", "queue": label, "failures": failures},
            )
        try:
            delivered = self._on_messages_ready(queue_url, queue, result)
        except Exception:
            logger.exception("could not hand received messages to the worker", extra={"queue": label})
            delivered = 0
        self._loop1(queue, delivered)

    def _receive_failed(self, queue: str, label: str, failure: ReceiveFailed) -> None:
        failures = self._failures[queue] = self._failures.get(queue, 0) + 1
        liveness.STATE.failed(label, failure.reason)
        if failures == 1 or failures % 20 == 0:
            logger.warning(
                "SQS receive on %s failed (%s, %d in a row): %s; polling again",
                label,
                failure.reason,
                failures,
                failure.detail,
                extra={"event": "sqs_receive_failed", "queue": label, "reason": failure.reason},
            )
        if failure.reason == "missing_queue" and self._recreate_queue(queue):
            self._poll_later(queue, 0)
            return
        self._poll_later(queue, min(BACKOFF_MAX_S, BACKOFF_START_S * 2 ** min(failures - 1, 8)))

    def _loop1(self, queue, messages_fetched=None):
        if messages_fetched:
            self._poll_later(queue, 0)
        else:
            self._poll_later(queue, self.connection.polling_interval or 0)

    def _poll_later(self, queue: str, delay: float) -> None:
        self._next_poll[queue] = time.monotonic() + delay
        if delay:
            self.hub.call_later(delay, self._schedule_queue, queue)
        else:
            self.hub.call_soon(self._schedule_queue, queue)

    # -- the watchdog ----------------------------------------------------------------
    def _watch(self) -> None:
        now = time.monotonic()
        liveness.STATE.loop_turned()
        self._watch_ticks += 1
        if self._watch_ticks == 5:
            faults.maybe_freeze("consumer-loop-freeze")
        stall = stall_after_s()
        for queue in list(self._active_queues):
            label = _label(self, queue)
            receive = self._receives.get(queue)
            if receive is not None and now - receive.started > stall:
                self._recover(
                    "stalled_receive", f"a receive on {label} got no answer for {now - receive.started:.0f} s"
                )
                return
            if receive is None:
                due = self._next_poll.get(queue)
                if due is None or now > due + stall:
                    # Nothing in flight and nothing scheduled (or scheduled and never run).
                    metrics.RECOVERIES.labels(reason="lost_loop").inc()
                    logger.warning("the receive loop of %s had stopped: polling again", label)
                    self._poll_later(queue, 0)
                    continue
            idle = liveness.STATE.since_last_receive(label)  # 0 while the pool is full
            if idle is not None and idle > stall and now - self._last_recovery > stall:
                self._recover("no_progress", f"no receive on {label} completed for {idle:.0f} s")
                return

    def _recover(self, reason: str, detail: str) -> None:
        self._last_recovery = time.monotonic()
        metrics.RECOVERIES.labels(reason=reason).inc()
        logger.warning(
            "SQS consumer recovering: %s; opening new connections and polling again",
            detail,
            extra={"event": "consumer_recovering", "reason": reason},
        )
        self._receives.clear()  # their answers, if they ever come, are ignored
        self._drop_clients()
        for queue in list(self._active_queues):
            self._poll_later(queue, 0)

    def close(self):
        if self._watchdog is not None:
            try:
                self._watchdog.cancel()
            except Exception:
                pass
            self._watchdog = None
        self._receives.clear()
        self._drop_clients()
        return super().close()


def _label(channel: SQS.Channel, queue: str) -> str:
    """The queue's platform name (runs, maintenance, dead-letter): a bounded metric label."""
    prefix = settings.QUEUE_PREFIX
    name = channel.canonical_queue_name(queue)
    return name[len(prefix) :] if prefix and name.startswith(prefix) else queue


class Transport(SQS.Transport):
    Channel = Channel
