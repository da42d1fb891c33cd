"""Celery tasks: thin. They take ids (or the signed envelope) and call a service."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from celery.signals import worker_process_init
from django.db import close_old_connections

from messaging.messages import CONSUME_TASK
from pipeline.consume import consume
from pipeline.runtimes import start_fork_server

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


@worker_process_init.connect(dispatch_uid="pipeline.tasks.warm_fork_server")
def warm_fork_server(**kwargs: object) -> None:
    """Each pool process starts its fork server as it starts, not on its first run (any
    workflow may ask for the isolated runtime, whatever the default)."""
    start_fork_server()
