"""Read-only admin pages for where the producers stand: schedule states, chain cursors
(with the poller's last N-0001) and webhook endpoints (URL only, never the secret)."""

from __future__ import annotations

from django.contrib import admin

from scheduler.models import ChainCursor, ScheduleState, WebhookEndpoint


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ScheduleState)
class ScheduleStateAdmin(ReadOnly):
    list_display = ("workflow", "fingerprint", "active", "armed_at", "last_fire_at", "next_fire_at")
    list_filter = ("active",)
    list_select_related = ("workflow",)


@admin.register(ChainCursor)
class ChainCursorAdmin(ReadOnly):
    list_display = ("chain_id", "last_block", "head_seen", "last_polled_at", "last_error_code", "last_error_at")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnly):
    list_display = ("workflow", "path", "created_at", "rotated_at")
    exclude = ("secret_ciphertext",)
    list_select_related = ("workflow",)
