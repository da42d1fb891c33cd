from celery import shared_task

from incidents.detection import run_detection
from pipeline.tasks import ConveyorTask


@shared_task(base=ConveyorTask, name="incidents.tasks.detect")
def detect() -> dict:
    report = run_detection()
    return {"acquired": report.acquired, "read": report.read, "opened": report.opened, "resolved": report.resolved}
