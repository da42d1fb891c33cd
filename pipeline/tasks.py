"""Celery tasks: thin. They take ids (or the signed envelope) and call a service."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.db import close_old_connections

from messaging.messages import CONSUME_TASK
from pipeline.consume import consume

logger = logging.getLogger("conveyor.tasks")


class ConveyorTask(Task):
    """Shared base: a fresh-or-healthy database connection around every task (workers keep
    persistent connections), and no result storage."""

    ignore_result = True
    acks_late = False  # acknowledged on acceptance: docs/decisions/0001-acknowledge-on-acceptance.md

    def __call__(self, *args, **kwargs):
        close_old_connections()
        try:
            return super().__call__(*args, **kwargs)
        finally:
            close_old_connections()


@shared_task(base=ConveyorTask, bind=True, name=CONSUME_TASK)
def consume_run(self, envelope: object) -> str:
    return consume(envelope, hostname=self.request.hostname or "").value
