"""The event webhook intake: a plain Django view (no session, no CSRF: senders
authenticate with the HMAC signature, scheduler.webhooks)."""

from __future__ import annotations

import math
from typing import cast

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from scheduler import metrics, webhooks


class WebhookRateThrottle(SimpleRateThrottle):
    """Per intake URL (its token), before any database or signature work:
    CONVEYOR_WEBHOOK_RATE."""

    scope = "webhook"

    def __init__(self, token: str):
        self.token = token
        super().__init__()

    def get_rate(self) -> str:
        return settings.CONVEYOR_WEBHOOK_RATE

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.token}


def _json(status: int, body: dict) -> JsonResponse:
    return JsonResponse(body, status=status)


@csrf_exempt
def intake(request: HttpRequest, token: str) -> JsonResponse:
    if request.method != "POST":
        metrics.WEBHOOK_REQUESTS.labels(outcome="method_not_allowed").inc()
        response = _json(405, {"error": "only POST is accepted"})
        response["Allow"] = "POST"
        return response
    # Rate limit per intake URL, before any database or signature work.
    throttle = WebhookRateThrottle(token)
    if not throttle.allow_request(cast(Request, request), cast(APIView, None)):
        metrics.WEBHOOK_REQUESTS.labels(outcome="rate_limited").inc()
        response = _json(429, {"error": "rate limited"})
        response["Retry-After"] = str(math.ceil(throttle.wait() or 1))
        return response
    endpoint = webhooks.endpoint_for_token(token)
    if endpoint is None:
        metrics.WEBHOOK_REQUESTS.labels(outcome="not_found").inc()
        return _json(404, {"error": "unknown webhook"})

    limit = settings.WEBHOOK_MAX_BODY_BYTES
    too_large = _json(413, {"error": f"body larger than {limit} bytes"})
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        metrics.WEBHOOK_REQUESTS.labels(outcome="too_large").inc()
        return too_large
    # Read from the stream, never past the limit (request.body would read it all).
    body = request.read(limit + 1)
    if len(body) > limit:
        metrics.WEBHOOK_REQUESTS.labels(outcome="too_large").inc()
        return too_large

    answer = webhooks.receive(endpoint, headers=request.headers, body=body)
    return _json(answer.status, answer.body)
