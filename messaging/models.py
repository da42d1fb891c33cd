"""What the queue side keeps in the database: each worker's consumer liveness."""

from django.db import models


class WorkerLiveness(models.Model):
    """What one worker's consumer last reported about itself (messaging.liveness): one row
    per worker node name, refreshed every CONVEYOR_WORKER_LIVENESS_INTERVAL_S. A row not
    refreshed for a few intervals is a worker that is gone (or cannot reach the database)."""

    node = models.CharField(max_length=200, unique=True, help_text="the worker's node name, e.g. runs@host")
    hostname = models.CharField(max_length=200, blank=True, default="")
    pid = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, help_text="ok, degraded, stalled or stopped")
    details = models.JSONField(default=dict, blank=True, help_text="per queue: last receive, failures")
    updated_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["node"]
        verbose_name_plural = "worker liveness"

    def __str__(self) -> str:
        return f"{self.node}: {self.status} at {self.updated_at:%Y-%m-%d %H:%M:%S}"
