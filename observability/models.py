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
