from django.contrib import admin
from django.utils.html import format_html

from observability.models import FailureDigest, WorkerLiveness


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


_LIVENESS_COLOURS = {"ok": "#1b7f3b", "degraded": "#b26a00", "stalled": "#b3261e", "stopped": "#6b7280"}


@admin.register(WorkerLiveness)
class WorkerLivenessAdmin(admin.ModelAdmin):
    """Each worker's consumer as it last reported itself: `celery inspect` does not work
    on SQS, so this is the operator's view of the fleet (pipeline/liveness.py)."""

    list_display = ("node", "status_badge", "updated_at", "hostname", "pid", "queues_display")
    list_filter = ("status",)
    search_fields = ("node", "hostname")
    show_full_result_count = False
    fields = ("node", "status_badge", "updated_at", "hostname", "pid", "queues_display")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: WorkerLiveness):
        colour = _LIVENESS_COLOURS.get(obj.status, "#6b7280")
        return format_html(
            '<span style="background:{};color:#fff;border-radius:4px;padding:1px 6px">{}</span>', colour, obj.status
        )

    @admin.display(description="queues")
    def queues_display(self, obj: WorkerLiveness):
        queues = (obj.details or {}).get("queues", {})
        return format_html(
            "<br>".join(["{}"] * len(queues)) or "-",
            *(
                f"{name}: {state.get('state')}, last receive {state.get('last_receive_at') or 'never'}"
                + (f", {state['failures_in_a_row']} failures in a row" if state.get("failures_in_a_row") else "")
                for name, state in sorted(queues.items())
            ),
        )
