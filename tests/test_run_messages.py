"""The signed, versioned run message."""

import uuid

import pytest
from django.test import override_settings

from messaging import messages


def test_a_built_message_verifies():
    execution_id = uuid.uuid4()
    payload = messages.build(execution_id, "manual:1")
    assert messages.verify(payload).execution_id == execution_id


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda p: p.update(execution_id=str(uuid.uuid4())), "signature"),
        (lambda p: p.update(v=2), "version"),
        (lambda p: p.pop("issued_at"), "schema"),
        (lambda p: p.update(extra=1), "schema"),
        (lambda p: p.update(sig=123), "signature"),
    ],
)
def test_tampered_or_malformed_messages_are_refused_with_a_reason(mutate, reason):
    payload = messages.build(uuid.uuid4())
    mutate(payload)
    with pytest.raises(messages.InvalidMessage) as refused:
        messages.verify(payload)
    assert refused.value.reason == reason


def test_a_non_object_body_is_refused():
    with pytest.raises(messages.InvalidMessage):
        messages.verify("not json at all")


def test_the_previous_key_is_accepted_during_a_rotation_and_an_unknown_key_is_not():
    with override_settings(MESSAGE_SIGNING_KEY="old-key"):
        payload = messages.build(uuid.uuid4())
    with override_settings(MESSAGE_SIGNING_KEY="new-key", MESSAGE_SIGNING_PREVIOUS_KEYS=["old-key"]):
        messages.verify(payload)
    with override_settings(MESSAGE_SIGNING_KEY="new-key", MESSAGE_SIGNING_PREVIOUS_KEYS=[]):
        with pytest.raises(messages.InvalidMessage):
            messages.verify(payload)
