"""Webhook signatures v2 cover the version, the timestamp, the event id and the body: a
captured request replayed with another event id is refused, replayed as it is it makes
no second run; the retired scheme is refused naming v2; authentication comes before the
content type; hostile bodies are a 400 naming where. The documented Python and openssl
examples (docs/webhooks.md) sign deliveries the intake accepts."""

from __future__ import annotations

import hmac
import json
import re
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse

from executions.models import Execution
from scheduler import webhooks
from scheduler.models import WebhookEndpoint
from tests.factories import make_workflow
from tests.ui import live_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "webhooks.md"
BODY = json.dumps({"order": 7}).encode()


@pytest.fixture
def endpoint(producer_app, sqs_queues):
    return WebhookEndpoint.objects.get(workflow=make_workflow(trigger_type="event"))


def post(client, endpoint, headers, body=BODY, content_type="application/json"):
    return client.post(
        reverse("hooks:intake", args=[endpoint.token]), data=body, content_type=content_type, headers=headers
    )


def runs(endpoint) -> int:
    return Execution.objects.filter(workflow=endpoint.workflow).count()


def test_a_captured_request_replayed_with_another_event_id_is_refused(client, endpoint):
    captured = webhooks.signed_headers(endpoint.get_secret(), BODY, "evt_1")
    assert post(client, endpoint, captured).status_code == 202

    for forged_id in ("evt_2", "evt_3", "evt_1 "):
        response = post(client, endpoint, {**captured, webhooks.EVENT_ID_HEADER: forged_id})
        assert response.status_code == 401 and response.json() == {"error": "bad signature"}
    replayed = post(client, endpoint, captured)  # byte for byte, within the window
    assert replayed.status_code == 202 and replayed.json()["duplicate"] is True
    assert runs(endpoint) == 1


def test_the_retired_scheme_is_refused_naming_v2(client, endpoint):
    secret = endpoint.get_secret()
    headers = webhooks.signed_headers(secret, BODY, "evt_1")
    digest = hmac.new(secret.encode(), f"{headers[webhooks.TIMESTAMP_HEADER]}.".encode() + BODY, "sha256").hexdigest()

    response = post(client, endpoint, {**headers, webhooks.SIGNATURE_HEADER: f"sha256={digest}"})

    assert response.status_code == 401
    assert "sha256 is no longer accepted" in response.json()["error"] and "v2=" in response.json()["error"]
    assert runs(endpoint) == 0


def test_authentication_comes_before_the_content_type(client, endpoint):
    unsigned = {webhooks.TIMESTAMP_HEADER: "1", webhooks.SIGNATURE_HEADER: "v2=00", webhooks.EVENT_ID_HEADER: "e"}
    assert post(client, endpoint, unsigned, content_type="text/plain").status_code == 401

    signed = webhooks.signed_headers(endpoint.get_secret(), BODY, "evt_text")
    response = post(client, endpoint, signed, content_type="text/plain")
    assert response.status_code == 415 and "application/json" in response.json()["error"]
    assert runs(endpoint) == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"name": "a\\u0000b"}', "name contains a NUL character"),
        (b'{"a\\u0000": 1}', "a\\u0000 has a key that contains a NUL character"),
        (b'{"list": [1, "\\ud800"]}', "list[1] contains a lone surrogate"),
        (b'{"x": NaN}', "x must be a finite number"),
        (b"{" + b'"a":{' * 2000 + b"}" * 2001, "body is nested deeper than 32 levels"),
    ],
    ids=["nul-value", "nul-key", "surrogate", "nan", "deep"],
)
def test_a_body_that_cannot_be_stored_is_a_400_naming_where(client, endpoint, body, where):
    response = post(client, endpoint, webhooks.signed_headers(endpoint.get_secret(), body, "evt_bad"), body=body)
    assert response.status_code == 400, response.content
    assert where in response.json()["error"]
    assert runs(endpoint) == 0


def _code_block(language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)
    assert match, f"no {language} block in {DOCS}"
    return match.group(1)


def test_the_documented_python_sender_is_accepted(endpoint):
    namespace: dict = {}
    exec(_code_block("python"), namespace)  # the docs' own code, as a sender would copy it
    with live_server() as base_url:
        url = base_url + reverse("hooks:intake", args=[endpoint.token])
        assert namespace["deliver"](url, endpoint.get_secret(), "evt_doc", {"order": 8}) == 202
    assert Execution.objects.get(workflow=endpoint.workflow).input == {"order": 8}


def test_the_documented_openssl_command_computes_the_signature(tmp_path, endpoint):
    secret, timestamp, event_id = endpoint.get_secret(), 1767225600, "evt_123"
    (tmp_path / "body.json").write_bytes(BODY)
    script = _code_block("sh").replace("secret='…'", f"secret='{secret}'").replace("1767225600", str(timestamp))
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == webhooks.sign(secret, timestamp, event_id, BODY)
