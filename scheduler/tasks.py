"""Beat tasks of the producers. Thin: they call a service and report a summary.

Their names start with `maintenance_` so settings.CELERY_TASK_ROUTES sends them to the
maintenance queue, served by its own worker, away from the runs (DESIGN.md §4)."""

from celery import shared_task

from pipeline.tasks import ConveyorTask
from scheduler import retry_policy
from scheduler.blocks import poll_all
from scheduler.schedule import tick


@shared_task(base=ConveyorTask, name="scheduler.tasks.maintenance_schedule_tick")
def maintenance_schedule_tick() -> dict:
    report = tick()
    return {"fired": len(report.fired), "failed": len(report.failed), "missed": report.missed, "errors": report.errors}


@shared_task(base=ConveyorTask, name="scheduler.tasks.maintenance_block_poll")
def maintenance_block_poll() -> list[dict]:
    return [
        {"chain_id": r.chain_id, "fired": len(r.fired), "cursor": r.cursor_after, "error_code": r.error_code}
        for r in poll_all()
    ]


@shared_task(base=ConveyorTask, name="scheduler.tasks.maintenance_system_retry_tick")
def maintenance_system_retry_tick() -> dict:
    report = retry_policy.tick()
    return {"retried": len(report.retried), "failed": len(report.failed), "errors": report.errors}
