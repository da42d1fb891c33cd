"""An oversized body is refused with 413 before it is read; a malformed one with 400 and
the reason. Neither makes a run."""

import json

import pytest
from django.urls import reverse

from executions.models import Execution
from scheduler import webhooks
from scheduler.models import WebhookEndpoint
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    return WebhookEndpoint.objects.get(workflow=make_workflow(trigger_type="event"))


def post(client, endpoint, body: bytes, event_id: str | None = "evt_1"):
    headers = webhooks.signed_headers(endpoint.get_secret(), body, event_id or "")
    if event_id is None:
        del headers[webhooks.EVENT_ID_HEADER]
    return client.post(
        reverse("hooks:intake", args=[endpoint.token]), data=body, content_type="application/json", headers=headers
    )


def test_a_body_over_the_size_limit_is_413(client, endpoint):
    body = json.dumps({"blob": "x" * 2000}).encode()
    response = post(client, endpoint, body)
    assert response.status_code == 413
    assert response.json() == {"error": "body larger than 1024 bytes"}
    assert not Execution.objects.exists()


def test_a_body_exactly_at_the_limit_is_accepted(client, endpoint):
    body = json.dumps({"blob": "x" * (1024 - 12)}).encode()
    assert len(body) == 1024
    assert post(client, endpoint, body).status_code == 202


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a": 1', "body is not valid JSON: Expecting ',' delimiter at line 1 column 8"),
        (b"\xff\xfe", "body is not UTF-8"),
        (b"[1, 2]", "body must be a JSON object, not list"),
        (b"", "body is not valid JSON: Expecting value at line 1 column 1"),
    ],
)
def test_a_malformed_body_is_400_with_the_reason(client, endpoint, body, reason):
    response = post(client, endpoint, body)
    assert response.status_code == 400
    assert response.json() == {"error": reason}
    assert not Execution.objects.exists()


@pytest.mark.parametrize(
    ("event_id", "reason"),
    [(None, "missing X-Conveyor-Event-Id header"), ("x" * 201, "must be 1-200 printable ASCII characters")],
)
def test_a_missing_or_unusable_event_id_is_400(client, endpoint, event_id, reason):
    response = post(client, endpoint, b"{}", event_id=event_id)
    assert response.status_code == 400 and reason in response.json()["error"]


def test_an_unsigned_malformed_body_is_401_not_400(client, endpoint):
    response = client.post(
        reverse("hooks:intake", args=[endpoint.token]), data=b"not json", content_type="application/json"
    )
    assert response.status_code == 401  # an unauthenticated caller learns nothing about the body
