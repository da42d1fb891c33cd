"""Signed event webhooks: endpoints, signatures and the intake service
(DESIGN.md §5, docs/decisions/0004-triggers.md).

A sender POSTs JSON (`Content-Type: application/json`) to the workflow's secret URL
`/hooks/<token>/` with three headers (docs/webhooks.md has the scheme and verification
examples in Python and with openssl):

    X-Conveyor-Timestamp: <unix seconds>
    X-Conveyor-Event-Id:  <the sender's id of this event; a retried delivery repeats it>
    X-Conveyor-Signature: v2=<hex HMAC-SHA256(secret, "v2.<timestamp>.<event id>.<raw body>")>

The signature covers everything that decides what the request does: the scheme's
version, the timestamp, the event id and the body. A captured request replayed outside
the tolerance window is refused (401); inside it, the signed event id is the dispatch key
`event:<workflow id>:<event id>`, so a replay, or a retried delivery, makes no second run,
and changing the id breaks the signature. A request signed with the first scheme
(`sha256=`, which left the event id unsigned) is refused with a 401 naming v2. Checks run
in this order: authentication (401) first, whatever the body or its content type; then
the event id (400), the content type (415) and the body (400).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from executions.enqueue import EnqueueFailed, enqueue
from executions.models import Execution
from executions.rerun import enqueue_child
from failures.catalogue import PRODUCER_CODES
from failures.errors import SecretStoreError
from failures.statuses import ExecutionStatus, TriggerType
from scheduler import metrics
from scheduler.models import WebhookEndpoint
from scheduler.retry_policy import retry_key
from workflows import payloads
from workflows.models import Workflow

logger = logging.getLogger("conveyor.webhooks")

TIMESTAMP_HEADER = "X-Conveyor-Timestamp"
SIGNATURE_HEADER = "X-Conveyor-Signature"
EVENT_ID_HEADER = "X-Conveyor-Event-Id"
SIGNATURE_VERSION = "v2"
RETIRED_SCHEMES = ("sha256",)  # the first scheme: timestamp and body only
MAX_EVENT_ID_LENGTH = 200
PRODUCER_FAILURE_CODES = frozenset(PRODUCER_CODES.values())
_EVENT_ID = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: it goes into a key


# --- endpoints ----------------------------------------------------------------------------


def ensure_endpoint(workflow: Workflow) -> WebhookEndpoint:
    """The workflow's endpoint, created with a fresh token and secret on first use."""
    existing = WebhookEndpoint.objects.filter(workflow=workflow).first()
    if existing:
        return existing
    endpoint = WebhookEndpoint(workflow=workflow)
    endpoint.set_secret(secrets.token_urlsafe(32))
    try:
        with transaction.atomic():
            endpoint.save()
    except IntegrityError:  # created concurrently
        return WebhookEndpoint.objects.get(workflow=workflow)
    return endpoint


def rotate(endpoint: WebhookEndpoint, *, token: bool = False) -> WebhookEndpoint:
    """A new signing secret (and, with token=True, a new URL); the old ones stop working at once."""
    endpoint.set_secret(secrets.token_urlsafe(32))
    fields = ["secret_ciphertext", "rotated_at"]
    if token:
        endpoint.token = secrets.token_urlsafe(32)
        fields.append("token")
    endpoint.rotated_at = timezone.now()
    endpoint.save(update_fields=fields)
    return endpoint


# --- signatures ---------------------------------------------------------------------------


def signed_string(timestamp: int | str, event_id: str, body: bytes) -> bytes:
    """What a v2 signature covers: the version, the timestamp, the event id and the body."""
    return f"{SIGNATURE_VERSION}.{timestamp}.{event_id}.".encode() + body


def sign(secret: str, timestamp: int | str, event_id: str, body: bytes) -> str:
    """The signature header value a sender computes."""
    digest = hmac.new(secret.encode(), signed_string(timestamp, event_id, body), hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signed_headers(secret: str, body: bytes, event_id: str, timestamp: int | None = None) -> dict[str, str]:
    """All three headers of a delivery (for senders written in Python, and tests)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, event_id, body),
        EVENT_ID_HEADER: event_id,
    }


def _signature_problem(secret: str, timestamp: str, event_id: str, body: bytes, header: str) -> str:
    """Why the signature header does not authenticate the request ("" when it does)."""
    expected = sign(secret, timestamp, event_id, body)
    # Several signatures may be sent (comma-separated) so a sender can rotate smoothly.
    candidates = [part.strip() for part in header.split(",") if part.strip()]
    if any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates):
        return ""
    schemes = {candidate.partition("=")[0] for candidate in candidates}
    if schemes and schemes <= set(RETIRED_SCHEMES):
        return (
            f"signature scheme {', '.join(sorted(schemes))} is no longer accepted: sign with "
            f'{SIGNATURE_VERSION}=hex(HMAC-SHA256(secret, "{SIGNATURE_VERSION}.<timestamp>.<event id>.<raw body>"))'
        )
    return "bad signature"


# --- intake -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the intake answers: an HTTP status and a JSON body."""

    status: int
    body: dict
    outcome: str


def _refuse(status: int, outcome: str, reason: str) -> Answer:
    metrics.WEBHOOK_REQUESTS.labels(outcome=outcome).inc()
    return Answer(status, {"error": reason}, outcome)


def endpoint_for_token(token: str) -> WebhookEndpoint | None:
    """The endpoint of a live event-triggered workflow, or None (the intake answers 404)."""
    return (
        WebhookEndpoint.objects.select_related("workflow")
        .filter(token=token, workflow__deleted_at__isnull=True, workflow__trigger_type=TriggerType.EVENT)
        .first()
    )


def receive(endpoint: WebhookEndpoint, *, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Answer:
    """Authenticate, parse and enqueue one delivery whose body is already read (and within
    the size limit). Authentication comes first: an unauthenticated caller learns nothing
    about the body's validity."""
    now = time.time() if now is None else now
    timestamp, signature = headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not signature:
        return _refuse(401, "unauthorized", f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return _refuse(401, "unauthorized", f"{TIMESTAMP_HEADER} must be unix seconds")
    try:
        secret = endpoint.get_secret()
    except SecretStoreError as exc:
        # The platform cannot read its own secret store (C-0004): not the sender's fault,
        # and no run exists to carry the code; a 503 makes the sender retry later.
        logger.error(
            "webhook secret unreadable: %s", exc, extra={"error_code": exc.code, "workflow_id": endpoint.workflow_id}
        )
        metrics.WEBHOOK_REQUESTS.labels(outcome="error").inc()
        return Answer(503, {"error": exc.code}, "error")
    event_id = headers.get(EVENT_ID_HEADER, "")
    problem = _signature_problem(secret, timestamp, event_id, body, signature)
    if problem:
        return _refuse(401, "unauthorized", problem)
    if abs(now - int(timestamp)) > settings.WEBHOOK_TOLERANCE_S:
        # Checked after the signature so the timestamp is known to be the sender's own.
        return _refuse(
            401, "unauthorized", f"timestamp outside the {settings.WEBHOOK_TOLERANCE_S} s tolerance window (replay?)"
        )

    if not event_id:
        return _refuse(400, "bad_request", f"missing {EVENT_ID_HEADER} header")
    if len(event_id) > MAX_EVENT_ID_LENGTH or not _EVENT_ID.match(event_id):
        return _refuse(
            400, "bad_request", f"{EVENT_ID_HEADER} must be 1-{MAX_EVENT_ID_LENGTH} printable ASCII characters"
        )
    media_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if body and media_type != "application/json":  # an empty body has no type to check: it is malformed
        given = media_type or "untyped"
        return _refuse(415, "unsupported_media_type", f"the body must be application/json, not {given}")
    try:
        payload = payloads.loads(body)
    except payloads.UnsafeJSON as unsafe:
        return _refuse(400, "bad_request", str(unsafe))
    if not isinstance(payload, dict):
        return _refuse(400, "bad_request", f"body must be a JSON object, not {type(payload).__name__}")

    key = f"event:{endpoint.workflow_id}:{event_id}"
    try:
        enqueued = enqueue(endpoint.workflow, trigger_type=TriggerType.EVENT, dispatch_key=key, input=payload)
    except EnqueueFailed as failed:
        return _enqueue_failed(failed)
    if enqueued.created:
        metrics.WEBHOOK_REQUESTS.labels(outcome="accepted").inc()
        return Answer(202, {"run_id": str(enqueued.execution.pk), "duplicate": False}, "accepted")
    return _redelivered(enqueued.execution)


def _enqueue_failed(failed: EnqueueFailed) -> Answer:
    metrics.WEBHOOK_REQUESTS.labels(outcome="enqueue_failed").inc()
    return Answer(
        503,
        {"run_id": str(failed.execution.pk), "error": failed.code, "message": failed.customer_message},
        "enqueue_failed",
    )


class _AlreadyHandled(Exception):
    pass


def _latest(execution: Execution) -> Execution:
    """The newest run of this event: the run, or the newest child of its newest child..."""
    for _ in range(100):  # a chain is one retry per failed run: short
        child = Execution.objects.filter(rerun_of=execution).order_by("-created_at").first()
        if child is None:
            return execution
        execution = child
    return execution


def _never_queued(execution: Execution) -> bool:
    return execution.status == ExecutionStatus.SYSTEM_ERROR and execution.error_code in PRODUCER_FAILURE_CODES


def _redelivered(first: Execution) -> Answer:
    """A delivery of an event already received makes no second run, with one exception:
    if the event's latest run was never queued (ES-0001: its send failed, we answered
    503), the sender's retry is what should make it run. That retry is the failed run's
    one retry (dispatch key `retry:<failed run>:<attempt>`, shared with the retry policy,
    so the two never both make one)."""
    latest = _latest(first)
    if not _never_queued(latest):
        metrics.WEBHOOK_REQUESTS.labels(outcome="duplicate").inc()
        return Answer(202, {"run_id": str(latest.pk), "duplicate": True}, "duplicate")

    def check(parent: Execution) -> None:
        if not _never_queued(parent) or Execution.objects.filter(rerun_of=parent).exists():
            raise _AlreadyHandled

    try:
        enqueued = enqueue_child(
            latest.pk,
            trigger_type=TriggerType.EVENT,
            dispatch_key=retry_key,
            check=check,
            attempt=lambda parent: parent.attempt + 1,
        )
    except _AlreadyHandled:
        latest = _latest(first)
        metrics.WEBHOOK_REQUESTS.labels(outcome="duplicate").inc()
        return Answer(202, {"run_id": str(latest.pk), "duplicate": True}, "duplicate")
    except EnqueueFailed as failed:
        return _enqueue_failed(failed)
    metrics.WEBHOOK_REQUESTS.labels(outcome="redelivered").inc()
    return Answer(
        202, {"run_id": str(enqueued.execution.pk), "duplicate": False, "retry_of": str(latest.pk)}, "redelivered"
    )
