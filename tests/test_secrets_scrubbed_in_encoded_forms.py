"""A secret is masked in the forms an endpoint or a step may turn it into: base64 (standard
and URL-safe, at any offset inside a longer encoded text: an HTTP Basic credential), hex
(either case), URL- and JSON-escaped. In outputs, error messages and step records."""

import base64
import json
import socket

import pytest

from tests.helpers_http import LoopbackDNS, LoopbackHTTPServer, Reply
from workflows.engine import MASK, RunContext, RunFailed, Scrubber, run_definition

SECRET = "sk_live_9f8e7d6c5b4a"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def core_of(encoded: str) -> str:
    """The middle of an encoded secret: what would let anyone decode most of it back."""
    return encoded.rstrip("=")[3:-3]


@pytest.mark.parametrize(
    "leak",
    [
        SECRET,
        b64(SECRET),
        b64url(SECRET + "\xff"),
        b64(f"user:{SECRET}"),  # HTTP Basic
        b64(f"ab:{SECRET}"),
        b64(f"a:{SECRET}:b"),
        b64url(f'{{"key": "{SECRET}"}}'),
        SECRET.encode().hex(),
        SECRET.encode().hex().upper(),
        json.dumps({"k": SECRET}),
    ],
    ids=["literal", "base64", "base64url", "basic", "basic-shifted", "inside", "json-base64url", "hex", "HEX", "json"],
)
def test_every_encoded_form_of_a_secret_is_masked_wherever_it_stands(leak):
    scrub = Scrubber({"KEY": SECRET})
    text = f"upstream said: {leak} (trace)"

    masked = scrub.text(text)

    assert MASK in masked and masked.startswith("upstream said: ")
    assert SECRET not in masked and SECRET.encode().hex() not in masked.lower()
    for encoded in (b64(SECRET), b64url(SECRET), b64(f"user:{SECRET}")):
        assert core_of(encoded) not in masked
    # What is left around the mask cannot be decoded back into the secret.
    for piece in masked.replace(MASK, " ").split():
        try:
            decoded = base64.b64decode(piece + "==", validate=False)
        except ValueError:
            continue
        assert SECRET[:8].encode() not in decoded and SECRET[-8:].encode() not in decoded


def test_text_that_merely_shares_a_few_characters_with_an_encoded_secret_is_left_alone():
    scrub = Scrubber({"PIN": "4321", "KEY": SECRET})
    harmless = "c2tf is not a secret, nor is deadbeef, 43 or 21"
    assert scrub.text(harmless) == harmless


@pytest.fixture
def server(settings, monkeypatch):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    monkeypatch.setattr(socket, "getaddrinfo", LoopbackDNS().getaddrinfo)
    with LoopbackHTTPServer() as running:
        yield running


class Recorder:
    def __init__(self):
        self.events = []

    def start_step(self, step_id, action, position):
        return True

    def finish_step(self, step_id, *, status, output, error_type="", error_message=""):
        self.events.append({"step": step_id, "status": status, "output": output, "error": error_message})


def test_an_endpoint_that_echoes_the_credential_base64_encoded_leaks_it_nowhere(server):
    # The endpoint answers 500 with the Authorization header it got (an HTTP Basic
    # credential), and 200 with the credential decoded and re-encoded other ways.
    server.route("/fail", lambda seen: Reply(500, f"rejected {seen.headers['authorization']}"))
    server.route("/ok", lambda seen: Reply(200, {"b64url": b64url(SECRET), "hex": SECRET.encode().hex()}))
    basic = {"Authorization": "Basic " + b64(f"bot:{SECRET}")}
    ok = {"steps": [{"id": "call", "action": "http_request", "config": {"url": server.url("/ok"), "headers": basic}}]}
    fail = {
        "steps": [{"id": "call", "action": "http_request", "config": {"url": server.url("/fail"), "headers": basic}}]
    }
    context = RunContext(execution_id="r", workflow_id=1, organization_id=1, input={}, secrets={"KEY": SECRET})

    recorder = Recorder()
    result = run_definition(ok, context, recorder)
    with pytest.raises(RunFailed) as failed:
        run_definition(fail, context, recorder)

    everything = json.dumps([result, recorder.events, failed.value.classification.message])
    for form in (
        SECRET,
        core_of(b64(f"bot:{SECRET}")),
        core_of(b64url(SECRET)),
        SECRET.encode().hex(),
    ):
        assert form not in everything, form
    assert failed.value.classification.error_type == "external" and MASK in failed.value.classification.message
