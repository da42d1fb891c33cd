"""The execution model (DESIGN.md §2): runs, their steps and the append-only transition
log. Organizations live in tenancy.models, workflows in workflows.models (their models
keep this app's label, so their tables and admin URLs are unchanged)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from failures.catalogue import CODE_CHOICES, ErrorCategory, customer_message, safe_to_rerun
from failures.statuses import ERROR_STATUSES, IN_PROGRESS, TERMINAL, Actor, ErrorType, ExecutionStatus, TriggerType
from tenancy.models import Organization
from workflows.models import Runtime, Workflow


class Execution(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="executions")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="executions")
    workflow_version = models.PositiveIntegerField(default=1)
    trigger_type = models.CharField(max_length=16, choices=TriggerType.choices)
    dispatch_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    status = models.CharField(max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING)
    # Who wrote the current status (the reaper's writes are the only ones a claim heals).
    status_actor = models.CharField(max_length=16, choices=Actor.choices, blank=True, default="")
    error_type = models.CharField(max_length=16, choices=ErrorType.choices, blank=True, default="")
    error_category = models.CharField(max_length=32, choices=ErrorCategory.choices, blank=True, default="")
    error_code = models.CharField(max_length=16, choices=CODE_CHOICES, blank=True, default="")
    error_message = models.TextField(blank=True, default="", help_text="internal; never shown to customers")
    classifier_rule = models.CharField(max_length=64, blank=True, default="")
    # E-0002 (a step used up its retries): the last attempt's own code; error_category is
    # that attempt's category, so an outage counts where it happened.
    error_cause_code = models.CharField(max_length=16, choices=CODE_CHOICES, blank=True, default="")
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    # A resume (trigger type `resume`, executions/resume.py): the step of `rerun_of` it
    # starts at; the steps before it reuse the original's outputs.
    resume_step = models.CharField(max_length=100, blank=True, default="")
    # The system-error retry policy would have resumed this run but its interrupted step
    # is not safe to repeat: it waits for an operator (counted once, when set).
    left_for_operator = models.BooleanField(default=False)
    runtime = models.CharField(max_length=16, choices=Runtime.choices, blank=True, default="")
    claim_token = models.UUIDField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    steps_total = models.PositiveIntegerField(default=0)
    steps_started = models.PositiveIntegerField(default=0)
    steps_succeeded = models.PositiveIntegerField(default=0)
    steps_failed = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            # The reaper's scan: only in-progress rows, tiny however large the table.
            models.Index(
                fields=["status", "queued_at"],
                name="exec_in_progress_idx",
                condition=Q(status__in=sorted(IN_PROGRESS)),
            ),
            models.Index(fields=["status", "-created_at"], name="exec_status_created_idx"),
            models.Index(fields=["workflow", "-created_at"], name="exec_workflow_created_idx"),
            models.Index(fields=["workflow", "status", "-created_at"], name="exec_wf_status_created_idx"),
            models.Index(fields=["organization", "-created_at"], name="exec_org_created_idx"),
            models.Index(fields=["organization", "status", "-created_at"], name="exec_org_status_created_idx"),
            models.Index(fields=["-created_at"], name="exec_created_idx"),
            models.Index(fields=["error_code", "-created_at"], name="exec_code_created_idx"),
            models.Index(fields=["finished_at", "status", "error_type"], name="exec_finished_status_idx"),
            models.Index(fields=["trigger_type", "-created_at"], name="exec_trigger_created_idx"),
            models.Index(
                fields=["error_type", "-created_at"],
                name="exec_error_type_created_idx",
                condition=Q(status__in=sorted(ERROR_STATUSES)),
            ),
            models.Index(
                fields=["error_category", "-created_at"],
                name="exec_category_created_idx",
                condition=Q(status__in=sorted(ERROR_STATUSES)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def customer_message(self) -> str:
        return customer_message(
            status=self.status,
            error_type=self.error_type,
            error_code=self.error_code,
            error_message=self.error_message,
            left_for_operator=self.left_for_operator,
        )

    @property
    def safe_to_rerun(self) -> bool:
        return safe_to_rerun(error_type=self.error_type, error_code=self.error_code)

    @property
    def resumed_notice(self) -> str:
        """ "resumed from <run> at step <id>" for a resume, else ""."""
        if not self.resume_step or self.rerun_of_id is None:
            return ""
        return f"resumed from {self.rerun_of_id} at step {self.resume_step}"


class StepStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    ERROR = "error", "Error"
    SKIPPED = "skipped", "Skipped"


class Step(models.Model):
    """One row per executed step, written when the step starts (DESIGN.md §2)."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=100)
    action = models.CharField(max_length=100)
    position = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.RUNNING)
    claim_token = models.UUIDField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error_type = models.CharField(max_length=16, choices=ErrorType.choices, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # A step with a retry policy: one record per attempt (attempt, started_at,
    # finished_at, outcome, error_type/category/code/message, retry_in_s).
    attempts = models.JSONField(null=True, blank=True)
    # A resume reused this output of the original run instead of running the step.
    reused = models.BooleanField(default=False)

    class Meta:
        ordering = ["position", "started_at"]
        indexes = [models.Index(fields=["execution", "position"], name="step_execution_idx")]

    def __str__(self) -> str:
        return f"{self.step_id} ({self.status})"


class Transition(models.Model):
    """Append-only audit trail of every status move."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, choices=ExecutionStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=ExecutionStatus.choices)
    actor = models.CharField(max_length=16, choices=Actor.choices)
    reason = models.CharField(max_length=500, blank=True, default="")
    error_code = models.CharField(max_length=16, blank=True, default="")
    move = models.CharField(max_length=32, blank=True, default="")
    claim_token = models.UUIDField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["execution", "at"], name="transition_execution_idx")]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status} ({self.actor})"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise RuntimeError("the transition log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("the transition log is append-only (retention deletes in bulk)")
