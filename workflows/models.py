"""Workflows: what a run runs (DESIGN.md §5). A definition and a trigger config are
validated on every save; every change of definition is kept as a version.

The models keep `app_label = "executions"`, where they were born: their tables, admin
URLs (/admin/executions/workflow/...), content types and permissions stay as they are;
their Python home is here."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from failures.errors import InvalidDefinition
from failures.statuses import TriggerType
from tenancy.models import Organization
from workflows.definitions import validate_definition
from workflows.triggers import InvalidTrigger, validate_trigger

APP_LABEL = "executions"


class Runtime(models.TextChoices):
    ISOLATED = "isolated", "Isolated (child process)"
    INLINE = "inline", "Inline (in the worker)"


class WorkflowQuerySet(models.QuerySet):
    def alive(self) -> WorkflowQuerySet:
        return self.filter(deleted_at__isnull=True)


class Workflow(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="workflows")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    trigger_type = models.CharField(max_length=16, choices=TriggerType.choices, default=TriggerType.MANUAL)
    trigger_config = models.JSONField(default=dict, blank=True)
    definition = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    runtime = models.CharField(max_length=16, choices=Runtime.choices, blank=True, default="")
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True, help_text="0 or empty: no limit")
    deadline_seconds = models.PositiveIntegerField(null=True, blank=True)
    # Automatic re-run of system errors that provably did no work (off by default).
    system_retry_max_attempts = models.PositiveIntegerField(default=0, help_text="0: never retry automatically")
    system_retry_backoff_seconds = models.PositiveIntegerField(default=30)
    # P-0003 / E-0001 runs whose interrupted step is idempotent are retried as a resume
    # (scheduler/retry_policy.py, docs/decisions/0014-step-retries-and-resume.md).
    system_retry_resume = models.BooleanField(
        default=False, help_text="resume P-0003/E-0001 runs from the interrupted step when it is safe to repeat"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkflowQuerySet.as_manager()

    class Meta:
        app_label = APP_LABEL
        indexes = [models.Index(fields=["organization", "name"], name="workflow_org_name_idx")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """Validate the definition on every save and keep a version per change."""
        validate_definition(self.definition, runtime=self.effective_runtime)
        self.trigger_config = validate_trigger(self.trigger_type, self.trigger_config)
        if self.pk is not None:
            previous = Workflow.objects.filter(pk=self.pk).values_list("definition", flat=True).first()
            if previous is not None and previous != self.definition:
                self.version += 1
        super().save(*args, **kwargs)
        WorkflowVersion.objects.get_or_create(
            workflow=self, version=self.version, defaults={"definition": self.definition}
        )

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            validate_definition(self.definition, runtime=self.effective_runtime)
        except InvalidDefinition as exc:
            errors["definition"] = [f"{k}: {v}" for k, v in exc.errors.items()]
        try:
            self.trigger_config = validate_trigger(self.trigger_type, self.trigger_config)
        except InvalidTrigger as exc:
            errors["trigger_config"] = [f"{k}: {v}" for k, v in exc.errors.items()]
        if errors:
            raise ValidationError(errors)

    @property
    def effective_runtime(self) -> str:
        """The runtime its runs get unless a trigger overrides it."""
        return self.runtime or settings.DEFAULT_RUNTIME

    @property
    def is_runnable(self) -> bool:
        return self.enabled and self.deleted_at is None


class WorkflowVersion(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    definition = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = APP_LABEL
        constraints = [models.UniqueConstraint(fields=["workflow", "version"], name="workflow_version_unique")]

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.version}"
