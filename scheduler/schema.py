"""The event webhook intake in the OpenAPI schema (a drf-spectacular postprocessing hook).

The intake is a plain Django view (scheduler.views.intake: no DRF parsing, no session),
so drf-spectacular cannot see it; its operation is written here, next to the scheme it
documents (scheduler.webhooks, docs/webhooks.md). The timestamp and signature headers are
the operation's security: a sender computes them over the exact bytes it sends.
"""

from __future__ import annotations

from typing import Any

from scheduler.webhooks import EVENT_ID_HEADER, MAX_EVENT_ID_LENGTH, SIGNATURE_HEADER, TIMESTAMP_HEADER

INTAKE_PATH = "/hooks/{token}/"
SIGNATURE_SCHEME = "webhookSignature"
TIMESTAMP_SCHEME = "webhookTimestamp"

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _answer(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **extra}


def intake_operation() -> dict[str, Any]:
    accepted = {
        "type": "object",
        "properties": {
            "run_id": {"type": "string", "format": "uuid"},
            "duplicate": {"type": "boolean", "description": "true: this event was received before, no new run"},
            "retry_of": {
                "type": "string",
                "format": "uuid",
                "description": "the earlier run of this event that was never queued, which this delivery retries",
            },
        },
        "required": ["run_id", "duplicate"],
    }
    not_queued = {
        "type": "object",
        "properties": {
            "run_id": {"type": "string", "format": "uuid"},
            "error": {"type": "string"},
            "message": {"type": "string"},
        },
        "required": ["error"],
    }
    return {
        "operationId": "hooks_intake",
        "summary": "Receive a signed event: a run of the event-triggered workflow",
        "description": (
            f'`{SIGNATURE_HEADER}: v2=<hex HMAC-SHA256(secret, "v2.<timestamp>.<event id>.<raw body>")>` '
            f"with `{TIMESTAMP_HEADER}` the unix time of signing (docs/webhooks.md). Authentication is checked "
            "first (401 whatever the body or its content type), then the event id (400), the content type (415) "
            "and the body (400). An event id received before makes no second run (202, `duplicate`)."
        ),
        "tags": ["hooks"],
        "security": [{SIGNATURE_SCHEME: [], TIMESTAMP_SCHEME: []}],
        "parameters": [
            {
                "name": "token",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "the workflow's secret intake token",
            },
            {
                "name": EVENT_ID_HEADER,
                "in": "header",
                "required": True,
                "schema": {"type": "string", "pattern": f"^[\\x21-\\x7e]{{1,{MAX_EVENT_ID_LENGTH}}}$"},
                "description": "the sender's id of this event (signed); a retried delivery repeats it",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "description": "the run's input"}}},
        },
        "responses": {
            "202": _answer("the run was created, or the event was received before", accepted),
            "400": _answer("the event id or the body is refused", _ERROR),
            "401": _answer("missing or bad signature, retired scheme, or a timestamp outside the window", _ERROR),
            "404": _answer("no event-triggered workflow has this token", _ERROR),
            "413": _answer("the body is larger than CONVEYOR_WEBHOOK_MAX_BODY_BYTES", _ERROR),
            "415": _answer("the body is not application/json", _ERROR),
            "429": _answer(
                "rate limited (CONVEYOR_WEBHOOK_RATE per intake URL)",
                _ERROR,
                headers={"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
            ),
            "503": _answer("the platform could not read its secrets, or could not queue the run", not_queued),
        },
    }


def document_webhook_intake(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    result.setdefault("paths", {})[INTAKE_PATH] = {"post": intake_operation()}
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[SIGNATURE_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": SIGNATURE_HEADER,
        "description": "v2=<hex HMAC-SHA256 of v2.<timestamp>.<event id>.<raw body> with the endpoint's secret>",
    }
    schemes[TIMESTAMP_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": TIMESTAMP_HEADER,
        "description": "unix seconds when the request was signed (part of the signed string)",
    }
    return result
