"""Rate limits on the endpoints that create runs.

`RateLimiter` is a fixed-window counter in Django's cache, usable from any view (the
webhook intake included); `TriggerRateThrottle` is the DRF throttle built on it for the
API's trigger and re-run endpoints. The cache must be shared by every web process for the
limit to be global (a per-process LocMemCache multiplies it by the number of processes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_TRIGGER_RATE = "60/minute"


def parse_rate(rate: str) -> tuple[int, int]:
    """ "30/minute" -> (30, 60); the period is second, minute, hour or day."""
    try:
        count, period = rate.split("/")
        return int(count), _PERIODS[period.strip()[0].lower()]
    except (ValueError, KeyError):
        raise ValueError(f"invalid rate {rate!r}: use <n>/<second|minute|hour|day>") from None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # seconds until the window resets (0 when allowed)


class RateLimiter:
    """At most `rate` hits per key per window, counted in the cache.

    limiter = RateLimiter("webhook", "120/minute")
    decision = limiter.hit(token)
    if not decision.allowed:
        return JsonResponse({"error": "rate limited"}, status=429,
                            headers={"Retry-After": str(decision.retry_after)})
    """

    def __init__(self, scope: str, rate: str, *, cache_alias: str = "default"):
        self.scope = scope
        self.limit, self.window = parse_rate(rate)
        self.cache_alias = cache_alias

    def hit(self, key: str, *, now: float | None = None) -> Decision:
        now = time.time() if now is None else now
        window_start = int(now // self.window) * self.window
        cache_key = f"conveyor-rl:{self.scope}:{key}:{window_start}"
        cache = caches[self.cache_alias]
        if cache.add(cache_key, 1, timeout=self.window + 1):
            count = 1
        else:
            try:
                count = cache.incr(cache_key)
            except ValueError:  # expired between add and incr
                cache.add(cache_key, 1, timeout=self.window + 1)
                count = 1
        if count <= self.limit:
            return Decision(True, 0)
        return Decision(False, max(1, int(window_start + self.window - now)))


class TriggerRateThrottle(BaseThrottle):
    """Per user: runs created through the API (trigger and re-run). The rate is the
    setting CONVEYOR_TRIGGER_RATE (default 60/minute), read at each request."""

    scope = "run-trigger"

    def allow_request(self, request, view) -> bool:
        rate = getattr(settings, "CONVEYOR_TRIGGER_RATE", DEFAULT_TRIGGER_RATE)
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        self.decision = RateLimiter(self.scope, rate).hit(str(ident))
        return self.decision.allowed

    def wait(self) -> float | None:
        decision = getattr(self, "decision", None)
        return decision.retry_after if decision else None
