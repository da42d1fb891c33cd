"""State the producers keep between ticks (DESIGN.md §5, docs/decisions/0004-triggers.md).

None of it is needed for exactly-once: the dispatch key of each run is. These rows say
where a producer stands, so a restart neither skips nor repeats, and an operator can see
it in the admin.
"""

from __future__ import annotations

import secrets as _secrets

from django.db import models
from django.urls import reverse
from django.utils import timezone

from tenancy.cipher import decrypt, encrypt
from workflows.models import Workflow


class ScheduleState(models.Model):
    """Where one schedule workflow stands.

    `armed_at` is when the current cron/time zone started counting (the workflow's save
    that created, edited or re-enabled it): fire times before it never run. `last_fire_at`
    is the latest fire time handled (enqueued, or given up as outside the catch-up window).
    """

    workflow = models.OneToOneField(Workflow, primary_key=True, on_delete=models.CASCADE, related_name="schedule_state")
    fingerprint = models.CharField(max_length=300, help_text="the cron and time zone this state was armed for")
    active = models.BooleanField(default=True, help_text="false while the workflow is disabled or not a schedule")
    armed_at = models.DateTimeField()
    last_fire_at = models.DateTimeField(null=True, blank=True)
    next_fire_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"schedule of workflow {self.workflow_id}: last {self.last_fire_at}, next {self.next_fire_at}"


class ChainCursor(models.Model):
    """The block poller's cursor for one chain: every confirmed block up to `last_block`
    has been handled (its runs enqueued, or skipped past the catch-up bound)."""

    chain_id = models.PositiveBigIntegerField(primary_key=True)
    last_block = models.BigIntegerField()
    head_seen = models.BigIntegerField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=16, blank=True, default="")
    last_error = models.TextField(blank=True, default="", help_text="internal; the RPC URL is redacted")
    last_error_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"chain {self.chain_id} at block {self.last_block}"


def _new_token() -> str:
    return _secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """The secret intake URL of one event-triggered workflow and its signing secret.

    The token is the URL's path segment (unguessable, so the URL itself is a secret);
    the signing secret is encrypted at rest like organization secrets, because the
    intake must read it back to verify an HMAC.
    """

    workflow = models.OneToOneField(Workflow, on_delete=models.CASCADE, related_name="webhook_endpoint")
    token = models.CharField(max_length=64, unique=True, default=_new_token)
    secret_ciphertext = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"webhook of workflow {self.workflow_id}"

    @property
    def path(self) -> str:
        return reverse("hooks:intake", args=[self.token])

    def get_secret(self) -> str:
        return decrypt(self.secret_ciphertext)

    def set_secret(self, plaintext: str) -> None:
        self.secret_ciphertext = encrypt(plaintext)
