from celery import shared_task

from pipeline.tasks import ConveyorTask
from reaper.sweep import run_sweep


@shared_task(base=ConveyorTask, name="reaper.tasks.sweep")
def sweep() -> dict:
    report = run_sweep()
    return {"acquired": report.acquired, "reaped": report.reaped, "errors": report.errors}
