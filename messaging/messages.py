"""The run message: a versioned, HMAC-signed envelope.

The signature covers every field but itself, over canonical JSON. The current key signs;
the current and previous keys verify, so keys rotate without dropping messages in
flight. A message that fails any check is never executed: the consumer copies it to the
dead-letter queue.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

SCHEMA_VERSION = 1
# The consumer's Celery task (pipeline.tasks.consume_run). The name predates the layers and
# is part of the message contract: messages in flight across a deploy keep working.
CONSUME_TASK = "executions.consume_run"
_FIELDS = {"v", "execution_id", "dispatch_key", "issued_at", "sig"}


class InvalidMessage(ValueError):
    """Why a message was refused; `reason` is a bounded label for metrics."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RunMessage:
    execution_id: uuid.UUID
    dispatch_key: str | None
    issued_at: str


def _canonical(payload: dict) -> bytes:
    unsigned = {k: v for k, v in payload.items() if k != "sig"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def _sign(payload: dict, key: str) -> str:
    return hmac.new(key.encode(), _canonical(payload), hashlib.sha256).hexdigest()


def build(execution_id: uuid.UUID | str, dispatch_key: str | None = None) -> dict:
    payload = {
        "v": SCHEMA_VERSION,
        "execution_id": str(execution_id),
        "dispatch_key": dispatch_key,
        "issued_at": timezone.now().isoformat(),
    }
    payload["sig"] = _sign(payload, settings.MESSAGE_SIGNING_KEY)
    return payload


def verify(payload: object) -> RunMessage:
    if not isinstance(payload, dict):
        raise InvalidMessage("schema", f"body is {type(payload).__name__}, not an object")
    if payload.get("v") != SCHEMA_VERSION:
        raise InvalidMessage("version", f"schema version {payload.get('v')!r} is not {SCHEMA_VERSION}")
    missing = _FIELDS - payload.keys()
    extra = payload.keys() - _FIELDS
    if missing or extra:
        raise InvalidMessage("schema", f"missing {sorted(missing)} extra {sorted(extra)}")
    signature = payload["sig"]
    if not isinstance(signature, str):
        raise InvalidMessage("signature", "signature is not a string")
    keys = [settings.MESSAGE_SIGNING_KEY, *settings.MESSAGE_SIGNING_PREVIOUS_KEYS]
    if not any(hmac.compare_digest(_sign(payload, key), signature) for key in keys):
        raise InvalidMessage("signature", "signature does not match any signing key")
    try:
        execution_id = uuid.UUID(str(payload["execution_id"]))
    except ValueError:
        raise InvalidMessage("schema", "execution_id is not a UUID") from None
    dispatch_key = payload["dispatch_key"]
    if dispatch_key is not None and not isinstance(dispatch_key, str):
        raise InvalidMessage("schema", "dispatch_key is not a string")
    return RunMessage(execution_id, dispatch_key, str(payload["issued_at"]))
