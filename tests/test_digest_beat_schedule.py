"""Celery beat runs the failure digest daily and weekly (CONVEYOR_DIGEST_PERIODS) and the
retention purge periodically, all on the maintenance queue."""

from celery.schedules import crontab
from django.conf import settings


def entries_for(task: str) -> list[dict]:
    return [entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == task]


def test_the_digest_is_scheduled_daily_and_weekly_on_the_maintenance_queue():
    digests = entries_for("observability.tasks.send_failure_digests")

    assert sorted(entry["args"] for entry in digests) == [("daily",), ("weekly",)]
    for entry in digests:
        assert entry["options"]["queue"] == settings.MAINTENANCE_QUEUE
        assert isinstance(entry["schedule"], crontab)
    weekly = next(entry for entry in digests if entry["args"] == ("weekly",))
    assert weekly["schedule"].day_of_week == {settings.DIGEST_WEEKDAY}


def test_retention_is_scheduled_on_the_maintenance_queue():
    (purge,) = entries_for("observability.tasks.purge_expired_runs")

    assert purge["options"]["queue"] == settings.MAINTENANCE_QUEUE


def test_observability_tasks_route_to_the_maintenance_queue():
    from config.celery import app

    for name in ("send_failure_digests", "send_organization_digest", "purge_expired_runs"):
        route = app.amqp.router.route({}, f"observability.tasks.{name}")
        assert route["queue"].name == settings.MAINTENANCE_QUEUE
