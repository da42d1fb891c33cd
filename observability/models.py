from django.db import models
from django.utils import timezone

from failures.statuses import ExecutionStatus


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


class RunHour(models.Model):
    """Runs that finished within one UTC hour, per terminal status: the health page's SLI
    over 30 days sums about 3,600 of these rows instead of counting a million runs.

    Written only by ``observability.health.roll_up`` (a maintenance-queue task), which
    recomputes the last closed hours from the runs themselves, so a row is idempotent and
    the table can be rebuilt at any time (decision 0015)."""

    hour = models.DateTimeField(help_text="start of the UTC hour the runs finished in")
    status = models.CharField(max_length=16, choices=ExecutionStatus.choices)
    runs = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["hour", "status"]
        constraints = [models.UniqueConstraint(fields=["hour", "status"], name="run_hour_hour_status_unique")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.status}: {self.runs}"
