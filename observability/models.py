from django.db import models
from django.utils import timezone


class DigestPeriod(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"


class FailureDigest(models.Model):
    """A failure digest as it was built and sent to an organization (observability.digest).

    One per organization, period and period start: a beat that fires twice, or a task
    delivered twice, sends it once."""

    organization = models.ForeignKey(
        "executions.Organization", on_delete=models.CASCADE, related_name="failure_digests"
    )
    period = models.CharField(max_length=16, choices=DigestPeriod.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    runs_finished = models.PositiveIntegerField(default=0)
    success_rate = models.FloatField(null=True, blank=True, help_text="success / (success + error + system_error)")
    system_errors = models.PositiveIntegerField(default=0)
    workflow_errors = models.PositiveIntegerField(default=0, help_text="user and external errors (status error)")
    subject = models.CharField(max_length=300, blank=True, default="")
    body = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    recipients = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_start", "organization_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "period", "period_start"], name="digest_org_period_unique")
        ]

    def __str__(self) -> str:
        return f"{self.organization} {self.period} digest from {self.period_start:%Y-%m-%d}"


class WorkerLiveness(models.Model):
    """What one worker's consumer last reported about itself (pipeline.liveness): one row
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
