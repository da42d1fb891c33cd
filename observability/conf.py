"""The observability settings and their defaults.

config/settings.py sets them from the environment (CONVEYOR_* variables); the defaults
here apply to a settings module that does not mention them, so the app works the same
either way.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # /metrics: the database collectors count runs that finished within this window.
    "METRICS_WINDOW_S": 3600,
    # Organizations (slugs) whose workflows get a per-workflow error series.
    "METRICS_MANAGED_ORGS": [],
    # Queue depth: which queues (prefix-less), how long a read may take, how long it is cached.
    "METRICS_QUEUES": None,  # None: the runs, maintenance and dead-letter queues
    "METRICS_QUEUE_TIMEOUT_S": 1.0,
    "METRICS_QUEUE_CACHE_S": 15.0,
    # A worker's own exporter (0: none), see docs/decisions/0005-worker-metrics.md.
    "WORKER_METRICS_PORT": 0,
    "WORKER_METRICS_ADDR": "0.0.0.0",
    # Failure digest.
    "DIGEST_PERIODS": ["daily", "weekly"],
    "DIGEST_HOUR_UTC": 6,
    "DIGEST_WEEKDAY": 1,  # crontab day_of_week: 1 = Monday
    "DIGEST_TOP_WORKFLOWS": 5,
    "DIGEST_RECENT_ERRORS": 10,
    "DIGEST_FROM_EMAIL": None,  # None: DEFAULT_FROM_EMAIL
    # Retention.
    "RETENTION_DAYS": 90,
    "RETENTION_BATCH_SIZE": 500,
    "RETENTION_MAX_BATCHES": 200,
    "RETENTION_INTERVAL_S": 3600,
}


def get(name: str) -> Any:
    value = getattr(settings, name, DEFAULTS[name])
    if name == "METRICS_QUEUES" and value is None:
        return [settings.RUNS_QUEUE, settings.MAINTENANCE_QUEUE, settings.DEAD_LETTER_QUEUE]
    if name == "DIGEST_FROM_EMAIL" and not value:
        return settings.DEFAULT_FROM_EMAIL
    return value
