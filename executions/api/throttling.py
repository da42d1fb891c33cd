"""Rate limits on the endpoints that create runs: DRF's throttles (a sliding window kept
in Django's cache), with the rates from settings. The cache must be shared by every web
process for a limit to be global (the per-process default multiplies it by the number of
processes): CONVEYOR_CACHE_BACKEND.

DRF's throttles take any request that has `user` and `META`, so the runs pages use the
trigger throttle as they are, and the webhook intake (scheduler.views) subclasses it.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class TriggerRateThrottle(UserRateThrottle):
    """Per user: runs created through the API and the runs pages (trigger, run now,
    re-run). The rate is CONVEYOR_TRIGGER_RATE, read at each request."""

    scope = "run-trigger"

    def get_rate(self) -> str:
        return settings.CONVEYOR_TRIGGER_RATE
