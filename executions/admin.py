"""A basic Django admin for the execution model (the full operator admin — actions,
stuck filter, reclassify — is a later issue).

The runs list must stay fast on millions of rows: no full count, related rows joined in
the same query, filters only on indexed columns.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from executions.models import Execution, Member, Organization, OrganizationSecret, Step, Transition, Workflow
from executions.statuses import ExecutionStatus

S = ExecutionStatus

# One colour per status. System Error (the platform failed) is amber, distinct from the red
# of Error (the workflow or a service it called failed).
BADGE_COLOURS: dict[str, str] = {
    S.PENDING: "#6b7280",  # grey
    S.RUNNING: "#2563eb",  # blue
    S.SUCCESS: "#16a34a",  # green
    S.ERROR: "#dc2626",  # red
    S.SYSTEM_ERROR: "#d97706",  # amber
    S.CANCELLED: "#9ca3af",  # muted
    S.SKIPPED: "#9ca3af",  # muted
}
_UNKNOWN_COLOUR = "#6b7280"


def status_badge_html(status: str) -> str:
    label = S(status).label if status in S.values else status
    return format_html(
        '<span class="conveyor-status conveyor-status-{}" style="display:inline-block;padding:1px 8px;'
        'border-radius:9px;color:#fff;background:{};font-weight:600;white-space:nowrap">{}</span>',
        status,
        BADGE_COLOURS.get(status, _UNKNOWN_COLOUR),
        label,
    )


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class StepInline(ReadOnlyInline):
    model = Step
    fields = ("position", "step_id", "action", "status", "started_at", "finished_at", "error_type", "error_message")
    readonly_fields = fields
    ordering = ("position", "started_at")


class TransitionInline(ReadOnlyInline):
    model = Transition
    fields = ("at", "from_status", "to_status", "actor", "move", "error_code", "reason")
    readonly_fields = fields
    ordering = ("at", "id")


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ("user", "organization")
    list_select_related = ("user", "organization")
    list_filter = ("organization",)
    search_fields = ("user__username", "organization__name")
    raw_id_fields = ("user",)


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "trigger_type", "enabled", "version", "deleted_at", "updated_at")
    list_select_related = ("organization",)
    list_filter = ("enabled", "trigger_type", "organization")
    search_fields = ("name",)
    readonly_fields = ("version", "created_at", "updated_at")


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "status_badge",
        "workflow",
        "organization",
        "trigger_type",
        "error_type",
        "error_code",
        "created_at",
        "duration_ms",
    )
    list_display_links = ("id",)
    list_filter = ("status", "error_type", "error_category", "trigger_type")
    list_select_related = ("workflow", "organization")
    show_full_result_count = False
    ordering = ("-created_at",)
    search_fields = ("=id", "=dispatch_key")
    inlines = (StepInline, TransitionInline)
    fieldsets = (
        (None, {"fields": ("id", "status_badge", "workflow", "organization", "workflow_version", "trigger_type")}),
        (
            "Outcome",
            {
                "fields": (
                    "customer_message_display",
                    "error_type",
                    "error_category",
                    "error_code",
                    "classifier_rule",
                    "error_message",
                    "output",
                )
            },
        ),
        ("Input", {"fields": ("input", "dispatch_key", "attempt", "rerun_of")}),
        (
            "Timing",
            {
                "fields": (
                    "created_at",
                    "queued_at",
                    "started_at",
                    "heartbeat_at",
                    "deadline_at",
                    "finished_at",
                    "duration_ms",
                )
            },
        ),
        (
            "Runtime",
            {
                "fields": (
                    "runtime",
                    "worker",
                    "claim_token",
                    "status_actor",
                    "steps_total",
                    "steps_started",
                    "steps_succeeded",
                    "steps_failed",
                )
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        # Everything is read-only: status only moves through the transition function.
        return [field.name for field in self.model._meta.fields] + ["status_badge", "customer_message_display"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Execution) -> str:
        return status_badge_html(obj.status)

    @admin.display(description="customer message")
    def customer_message_display(self, obj: Execution) -> str:
        return obj.customer_message if obj.status in (S.ERROR, S.SYSTEM_ERROR) else "-"


class OrganizationSecretForm(forms.ModelForm):
    """Write-only: a new value can be set, the stored one is never rendered back."""

    value = forms.CharField(
        label="value",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: the stored value is never shown. Leave empty to keep it.",
    )

    class Meta:
        model = OrganizationSecret
        fields = ("organization", "name")

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None and not cleaned.get("value"):
            self.add_error("value", "A new secret needs a value.")
        return cleaned

    def save(self, commit: bool = True):
        secret = super().save(commit=False)
        if self.cleaned_data.get("value"):
            secret.set_value(self.cleaned_data["value"])
        if commit:
            secret.save()
        return secret


@admin.register(OrganizationSecret)
class OrganizationSecretAdmin(admin.ModelAdmin):
    """Neither the plaintext nor the ciphertext is ever displayed (list, form or history)."""

    form = OrganizationSecretForm
    list_display = ("name", "organization", "updated_at")
    list_select_related = ("organization",)
    list_filter = ("organization",)
    search_fields = ("name",)
    readonly_fields = ("created_at", "updated_at")
    fields = ("organization", "name", "value", "created_at", "updated_at")
