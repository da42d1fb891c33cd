"""An event-triggered workflow gets its webhook endpoint (secret URL and signing secret)
as soon as it is saved, whoever saves it (admin, API, shell)."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from failures.statuses import TriggerType
from scheduler.webhooks import ensure_endpoint
from workflows.models import Workflow


@receiver(post_save, sender=Workflow, dispatch_uid="scheduler.webhook_endpoint_for_event_workflows")
def webhook_endpoint_for_event_workflows(sender, instance: Workflow, raw: bool = False, **kwargs) -> None:
    if raw or instance.trigger_type != TriggerType.EVENT:
        return

    ensure_endpoint(instance)
