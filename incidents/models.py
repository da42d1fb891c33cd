"""Platform incidents (docs/decisions/0012-incidents.md).

An incident is a span of platform failure: when system errors of one category (or one
code) crossed the threshold within the window, it opened, backdated to its first error;
it gathers the later system errors of its categories and resolves after a quiet period.
Affected runs are linked through `IncidentRun` (a run belongs to one incident at most),
which also carries the run's workflow and organization so the counts, the customer's
digest and the organization's notice read an index, not a join over the runs table.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from executions.models import Execution
from tenancy.models import Organization
from workflows.models import Workflow


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class OpenedBy(models.TextChoices):
    AUTO = "auto", "Detector"
    OPERATOR = "operator", "Operator"


class Incident(models.Model):
    title = models.CharField(max_length=200, help_text="internal; never shown to customers")
    status = models.CharField(max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.OPEN)
    opened_by = models.CharField(max_length=16, choices=OpenedBy.choices, default=OpenedBy.AUTO)
    # What the detector grouped on: "category" or "code", and its value.
    key_kind = models.CharField(max_length=16, blank=True, default="")
    key = models.CharField(max_length=32, blank=True, default="")
    start = models.DateTimeField(help_text="the first error's time (backdated: detection may run later)")
    end = models.DateTimeField(null=True, blank=True, help_text="the last error's time once resolved")
    last_error_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    codes = models.JSONField(default=list, blank=True)
    categories = models.JSONField(default=list, blank=True)
    runs_count = models.PositiveIntegerField(default=0)
    workflows_count = models.PositiveIntegerField(default=0)
    organizations_count = models.PositiveIntegerField(default=0)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_incidents"
    )

    class Meta:
        ordering = ["-start", "-id"]
        indexes = [
            models.Index(fields=["status", "-start"], name="incident_status_start_idx"),
            models.Index(fields=["-start"], name="incident_start_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status == IncidentStatus.OPEN


class IncidentRun(models.Model):
    """One affected run. Workflow and organization are copied from the run (they never
    change) so per-organization and per-incident reads have indexes of their own."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="links")
    execution = models.OneToOneField(Execution, on_delete=models.CASCADE, related_name="incident_link")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    error_code = models.CharField(max_length=16, blank=True, default="")
    error_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["incident", "error_at"], name="incident_run_incident_idx"),
            models.Index(fields=["organization", "incident"], name="incident_run_org_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.execution_id} in incident #{self.incident_id}"


class NoteKind(models.TextChoices):
    OPENED = "opened", "Opened"
    GATHERED = "gathered", "Runs gathered"
    NOTE = "note", "Note"
    MERGED = "merged", "Merged"
    RESOLVED = "resolved", "Resolved"
    RECOVERY = "recovery", "Recovery"


class IncidentNote(models.Model):
    """The incident's timeline: append-only (staff only, never shown to customers)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notes")
    kind = models.CharField(max_length=16, choices=NoteKind.choices, default=NoteKind.NOTE)
    author = models.CharField(max_length=150, default="detector")
    text = models.TextField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["incident", "at"], name="incident_note_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}: {self.text[:40]}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise RuntimeError("an incident's timeline is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("an incident's timeline is append-only")


class DetectorState(models.Model):
    """Where the detector's last pass stopped (its watermark), one row."""

    name = models.CharField(max_length=32, primary_key=True)
    watermark = models.DateTimeField()
    last_pass_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} watermark {self.watermark:%Y-%m-%dT%H:%M:%S}"
