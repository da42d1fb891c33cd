"""Celery tasks: thin. They take ids (or the signed envelope) and call a service."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from celery.signals import worker_process_init
from django.db import close_old_connections

from messaging.messages import CONSUME_TASK
from pipeline import failure_hooks
from pipeline.consume import consume
from pipeline.runtimes import start_fork_server

logger = logging.getLogger("conveyor.tasks")


class ConveyorTask(Task):
    """Shared base: a fresh-or-healthy database connection around every task (workers keep
    persistent connections), and no result storage. What Celery reports failed around a
    run's task (its pool process lost, a time limit, an exception past the consumer) is
    written at once by the failure hooks (pipeline.failure_hooks, docs/decisions/0009)."""

    ignore_result = True
    acks_late = False  # acknowledged on acceptance: docs/decisions/0001-acknowledge-on-acceptance.md
    # The main process's request remembers the pool process each task went to.
    Request = "pipeline.failure_hooks:ConveyorRequest"

    def __call__(self, *args, **kwargs):
        close_old_connections()
        try:
            return super().__call__(*args, **kwargs)
        finally:
            close_old_connections()

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # In the pool process for an exception out of the task, in the main process for a
        # hard time limit; the task_failure signal reports the same once more (deduplicated).
        failure_hooks.report(self, exc, task_id, args)


@shared_task(base=ConveyorTask, bind=True, name=CONSUME_TASK)
def consume_run(self, envelope: object) -> str:
    return consume(envelope, hostname=self.request.hostname or "").value


@worker_process_init.connect(dispatch_uid="pipeline.tasks.warm_fork_server")
def warm_fork_server(**kwargs: object) -> None:
    """Each pool process starts its fork server as it starts, not on its first run (any
    workflow may ask for the isolated runtime, whatever the default)."""
    start_fork_server()
