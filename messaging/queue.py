"""The queue client: publishing a run's message, the dead-letter copy, queue creation
and the SQS client the metrics' queue-depth read uses.

Run messages go through Celery (kombu's SQS transport, messaging.broker); the rest uses
boto3 directly. Both read the same endpoint (AWS_ENDPOINT_URL_SQS) and queue-name prefix.
"""

from __future__ import annotations

import json
import logging
import uuid
from functools import cache

import boto3
from botocore.config import Config
from celery import current_app
from django.conf import settings

from messaging import messages, metrics

logger = logging.getLogger("conveyor.queue")


@cache
def _client(endpoint: str, region: str, connect_timeout: float, read_timeout: float, attempts: int):
    return boto3.client(
        "sqs",
        endpoint_url=endpoint or None,
        region_name=region,
        config=Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": attempts, "mode": "standard"},
        ),
    )


def client(*, timeout: float | None = None, attempts: int | None = None):
    """The SQS client for the configured endpoint; `timeout` and `attempts` tighten it for
    callers that must answer during an outage (the metrics' queue-depth read)."""
    return _client(
        settings.SQS_ENDPOINT_URL,
        settings.AWS_REGION,
        timeout if timeout is not None else settings.SQS_CONNECT_TIMEOUT_S,
        timeout if timeout is not None else settings.SQS_READ_TIMEOUT_S,
        attempts if attempts is not None else settings.SQS_MAX_ATTEMPTS,
    )


def full_name(queue: str) -> str:
    return f"{settings.QUEUE_PREFIX}{queue}"


class QueueMissing(RuntimeError):
    """A platform queue does not exist and the platform may not create it."""

    def __init__(self, name: str):
        self.queue_name = name
        super().__init__(
            f"SQS queue {name!r} does not exist and CONVEYOR_SQS_CREATE_QUEUES=0 forbids creating it: "
            f"create it (VisibilityTimeout={settings.SQS_VISIBILITY_TIMEOUT}) or set CONVEYOR_SQS_CREATE_QUEUES=1"
        )


_queue_urls: dict[tuple[str, str], str] = {}


def _resolve(name: str, *, create: bool) -> str:
    sqs = client()
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        if not create:
            raise QueueMissing(name) from None
        url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(settings.SQS_VISIBILITY_TIMEOUT)})[
            "QueueUrl"
        ]
        logger.info("SQS queue %s created", name, extra={"event": "sqs_queue_created", "queue": name})
        return url


def queue_url(queue: str, *, refresh: bool = False) -> str:
    """The URL of a platform queue (prefix-less name: "runs"), created with the configured
    attributes if it does not exist and CONVEYOR_SQS_CREATE_QUEUES allows it."""
    key = (settings.SQS_ENDPOINT_URL, full_name(queue))
    if refresh or key not in _queue_urls:
        _queue_urls[key] = _resolve(key[1], create=settings.SQS_CREATE_QUEUES)
    return _queue_urls[key]


def platform_queues() -> tuple[str, ...]:
    return (settings.RUNS_QUEUE, settings.MAINTENANCE_QUEUE, settings.DEAD_LETTER_QUEUE)


def ensure_queues(*, refresh: bool = False) -> dict[str, str]:
    """Every platform queue (runs, maintenance, dead-letter), created if missing: a
    restarted SQS server loses them all at once."""
    return {name: queue_url(name, refresh=refresh) for name in platform_queues()}


def publish(execution_id: uuid.UUID | str, dispatch_key: str | None, *, delay_seconds: int = 0) -> None:
    """Send a run's signed message to the runs queue (by task name: the consumer's task
    is pipeline.tasks.consume_run, whose module this layer does not import)."""
    options: dict = {"queue": settings.RUNS_QUEUE, "retry": False}
    if delay_seconds:
        options["DelaySeconds"] = delay_seconds
    current_app.send_task(messages.CONSUME_TASK, args=[messages.build(execution_id, dispatch_key)], **options)


def send_to_dead_letter(body: str | bytes, *, reason: str, source: str, detail: str = "") -> None:
    """Copy a refused message to the dead-letter queue, explicitly (no RedrivePolicy is
    relied on: a message acknowledged on acceptance would never reach one)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    message = {
        "MessageBody": body or "<empty>",
        "MessageAttributes": {
            "reason": {"DataType": "String", "StringValue": reason},
            "source": {"DataType": "String", "StringValue": source},
            "detail": {"DataType": "String", "StringValue": (detail or "-")[:1000]},
        },
    }
    sqs = client()
    try:
        sqs.send_message(QueueUrl=queue_url(settings.DEAD_LETTER_QUEUE), **message)
    except sqs.exceptions.QueueDoesNotExist:
        # Gone since its URL was cached (a restarted SQS server): look it up (or create it) again.
        sqs.send_message(QueueUrl=queue_url(settings.DEAD_LETTER_QUEUE, refresh=True), **message)
    metrics.DEAD_LETTERED.labels(reason=reason).inc()
    logger.warning(
        "message dead-lettered",
        extra={"event": "dead_lettered", "reason": reason, "source": source, "detail": detail[:500]},
    )


def dead_letter_safely(body: object, *, reason: str, source: str, detail: str = "") -> bool:
    """Dead-letter, and never raise: called from places (signal handlers, the consumer's
    decode path) where an exception would make Celery redeliver or crash the consumer."""
    try:
        text = body if isinstance(body, str | bytes) else json.dumps(body, default=str)
        send_to_dead_letter(text, reason=reason, source=source, detail=detail)
        return True
    except Exception:
        logger.exception("could not copy a refused message to the dead-letter queue", extra={"reason": reason})
        return False
