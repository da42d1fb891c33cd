"""A delivery is authenticated by an HMAC-SHA256 signature over "<timestamp>.<raw body>":
a bad or missing signature, or a signed timestamp outside the tolerance window (a replay),
is refused with 401 and makes no run."""

import json
import time

import pytest
from django.urls import reverse

from executions.models import Execution
from scheduler import webhooks
from scheduler.models import WebhookEndpoint
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db
BODY = json.dumps({"hello": "world"}).encode()


@pytest.fixture
def endpoint(settings):
    settings.WEBHOOK_TOLERANCE_S = 300
    return WebhookEndpoint.objects.get(workflow=make_workflow(trigger_type="event"))


def post(client, endpoint, headers, body=BODY):
    return client.post(
        reverse("hooks:intake", args=[endpoint.token]), data=body, content_type="application/json", headers=headers
    )


def refused(response, reason: str) -> None:
    assert response.status_code == 401, response.content
    assert reason in response.json()["error"]
    assert not Execution.objects.exists()


def test_a_signature_made_with_another_secret_is_refused(client, endpoint):
    refused(post(client, endpoint, webhooks.signed_headers("not-the-secret", BODY, "evt_1")), "bad signature")


def test_a_body_changed_after_signing_is_refused(client, endpoint):
    headers = webhooks.signed_headers(endpoint.get_secret(), BODY, "evt_1")
    refused(post(client, endpoint, headers, body=b'{"hello": "mallory"}'), "bad signature")


def test_a_timestamp_changed_after_signing_is_refused(client, endpoint):
    headers = webhooks.signed_headers(endpoint.get_secret(), BODY, "evt_1")
    headers[webhooks.TIMESTAMP_HEADER] = str(int(headers[webhooks.TIMESTAMP_HEADER]) + 1)
    refused(post(client, endpoint, headers), "bad signature")


def test_missing_signature_headers_are_refused(client, endpoint):
    refused(post(client, endpoint, {webhooks.EVENT_ID_HEADER: "evt_1"}), "missing")
    headers = webhooks.signed_headers(endpoint.get_secret(), BODY, "evt_1")
    for not_seconds in ("yesterday", "\u00b2\u00b3", "1" * 13):
        headers[webhooks.TIMESTAMP_HEADER] = not_seconds
        refused(post(client, endpoint, headers), "unix seconds")


def test_a_replay_signed_outside_the_tolerance_window_is_refused(client, endpoint):
    old = int(time.time()) - 301
    refused(post(client, endpoint, webhooks.signed_headers(endpoint.get_secret(), BODY, "evt_1", old)), "tolerance")
    future = int(time.time()) + 301
    refused(post(client, endpoint, webhooks.signed_headers(endpoint.get_secret(), BODY, "evt_2", future)), "tolerance")


def test_a_rotated_secret_refuses_the_old_one_at_once(client, endpoint):
    old_secret = endpoint.get_secret()
    webhooks.rotate(endpoint)
    refused(post(client, endpoint, webhooks.signed_headers(old_secret, BODY, "evt_1")), "bad signature")


def test_a_sender_may_send_several_signatures_while_it_rotates(client, endpoint):
    good = webhooks.signed_headers(endpoint.get_secret(), BODY, "evt_1")
    stale = webhooks.sign("old-secret", good[webhooks.TIMESTAMP_HEADER], "evt_1", BODY)
    good[webhooks.SIGNATURE_HEADER] = f"{stale}, {good[webhooks.SIGNATURE_HEADER]}"
    assert post(client, endpoint, good).status_code == 202
