from django.db import models
from django.utils import timezone


class Lease(models.Model):
    """A named lease row: one holder at a time (the reaper runs one sweep at a time).

    Taken with a compare-and-swap on `expires_at`, which works the same on SQLite and
    PostgreSQL (no advisory locks)."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=255, blank=True, default="")
    expires_at = models.DateTimeField(default=timezone.now)
    last_finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.expires_at:%Y-%m-%dT%H:%M:%S}"
