from django.contrib import admin
from django.utils.html import format_html

from messaging.models import WorkerLiveness

_LIVENESS_COLOURS = {"ok": "#1b7f3b", "degraded": "#b26a00", "stalled": "#b3261e", "stopped": "#6b7280"}


@admin.register(WorkerLiveness)
class WorkerLivenessAdmin(admin.ModelAdmin):
    """Each worker's consumer as it last reported itself: `celery inspect` does not work
    on SQS, so this is the operator's view of the fleet (messaging/liveness.py)."""

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
