"""Messages Celery itself refuses, copied to the dead-letter queue.

Celery drops bad messages outside the task body: a non-Celery body fires
`task_rejected`, an unknown task name `task_unknown`, and a Celery envelope with a
corrupt body or refused content type reaches `Consumer.on_decode_error` (logged and
acknowledged, no signal). All three are copied to the dead-letter queue here, then
deleted by Celery as usual, so a poison message never loops.
"""

from __future__ import annotations

from celery import signals
from celery.worker.consumer import Consumer

from messaging.queue import dead_letter_safely
from pipeline import metrics


def _body_of(message) -> object:
    body = getattr(message, "body", None)
    if body is None:
        body = getattr(message, "payload", "")
    return body


class DeadLetteringConsumer(Consumer):
    def on_decode_error(self, message, exc):
        dead_letter_safely(_body_of(message), reason="undecodable", source="celery-decode", detail=repr(exc))
        metrics.CLAIMS.labels(outcome="dead_lettered").inc()
        super().on_decode_error(message, exc)


@signals.task_rejected.connect
def _dead_letter_rejected(sender=None, message=None, exc=None, **kwargs):
    dead_letter_safely(_body_of(message), reason="rejected", source="celery-rejected", detail=repr(exc))
    metrics.CLAIMS.labels(outcome="dead_lettered").inc()


@signals.task_unknown.connect
def _dead_letter_unknown(sender=None, message=None, exc=None, name=None, id=None, **kwargs):
    dead_letter_safely(_body_of(message), reason="unknown_task", source="celery-unknown", detail=f"task {name!r}")
    metrics.CLAIMS.labels(outcome="dead_lettered").inc()
