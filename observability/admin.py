from django.contrib import admin
from django.utils.html import format_html

from observability.models import FailureDigest


@admin.register(FailureDigest)
class FailureDigestAdmin(admin.ModelAdmin):
    list_display = (
        "organization",
        "period",
        "period_start",
        "runs_finished",
        "success_rate_display",
        "system_errors",
        "workflow_errors",
        "sent_at",
    )
    list_filter = ("period", "organization")
    date_hierarchy = "period_start"
    search_fields = ("organization__slug", "organization__name")
    list_select_related = ("organization",)
    fields = (
        "organization",
        "period",
        "period_start",
        "period_end",
        "runs_finished",
        "success_rate_display",
        "system_errors",
        "workflow_errors",
        "recipients",
        "sent_at",
        "subject",
        "body_display",
    )

    def get_readonly_fields(self, request, obj=None):
        return self.fields  # a record of what was sent: never edited

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="success rate", ordering="success_rate")
    def success_rate_display(self, obj: FailureDigest) -> str:
        return "-" if obj.success_rate is None else f"{obj.success_rate:.1%}"

    @admin.display(description="digest")
    def body_display(self, obj: FailureDigest) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', obj.body)
