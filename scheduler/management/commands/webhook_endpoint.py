"""Show (or rotate) the webhook URL and signing secret of an event-triggered workflow:

manage.py webhook_endpoint <workflow id> [--rotate] [--rotate-url]
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from failures.statuses import TriggerType
from scheduler import webhooks
from workflows.models import Workflow


class Command(BaseCommand):
    help = "Print the intake URL path and signing secret of an event-triggered workflow."

    def add_arguments(self, parser) -> None:
        parser.add_argument("workflow_id", type=int)
        parser.add_argument("--rotate", action="store_true", help="issue a new signing secret")
        parser.add_argument("--rotate-url", action="store_true", help="issue a new URL token as well")

    def handle(self, *args, workflow_id: int, rotate: bool, rotate_url: bool, **options) -> None:
        workflow = Workflow.objects.alive().filter(pk=workflow_id).first()
        if workflow is None:
            raise CommandError(f"no workflow {workflow_id}")
        if workflow.trigger_type != TriggerType.EVENT:
            raise CommandError(f"workflow {workflow_id} is triggered by {workflow.trigger_type}, not by events")
        endpoint = webhooks.ensure_endpoint(workflow)
        if rotate or rotate_url:
            endpoint = webhooks.rotate(endpoint, token=rotate_url)
        self.stdout.write(f"url:    {endpoint.path}")
        self.stdout.write(f"secret: {endpoint.get_secret()}")
        self.stdout.write(
            f"headers: {webhooks.TIMESTAMP_HEADER}, {webhooks.EVENT_ID_HEADER}, "
            f"{webhooks.SIGNATURE_HEADER}: v2=hex(HMAC-SHA256(secret, 'v2.<timestamp>.<event id>.<raw body>'))"
            " — see docs/webhooks.md"
        )
