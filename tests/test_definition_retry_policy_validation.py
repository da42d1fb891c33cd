"""Retry policies and idempotency declarations in a definition: bad ones are refused
with errors naming the field; a retry on a step not safe to repeat is refused."""

import pytest

from failures.errors import InvalidDefinition
from workflows.definitions import validate_definition
from workflows.retries import policy_for, step_idempotent


def get(retry=None, **config):
    step = {"id": "a", "action": "http_request", "config": {"url": "https://api.example.com/x", **config}}
    if retry is not None:
        step["retry"] = retry
    return step


def errors_of(definition) -> dict:
    with pytest.raises(InvalidDefinition) as raised:
        validate_definition(definition)
    return raised.value.errors


@pytest.mark.parametrize(
    ("retry", "field", "words"),
    [
        ({}, "steps[0].retry.max_attempts", "is required"),
        ({"max_attempts": 0}, "steps[0].retry.max_attempts", "between 1 and 10"),
        ({"max_attempts": 11}, "steps[0].retry.max_attempts", "between 1 and 10"),
        ({"max_attempts": "3"}, "steps[0].retry.max_attempts", "whole number"),
        ({"max_attempts": 3, "backoff": "linear"}, "steps[0].retry.backoff", "fixed, exponential"),
        ({"max_attempts": 3, "delay_s": -1}, "steps[0].retry.delay_s", "between 0"),
        ({"max_attempts": 3, "delay_s": 5, "max_delay_s": 2}, "steps[0].retry.max_delay_s", "at least delay_s"),
        ({"max_attempts": 3, "jitter": "yes"}, "steps[0].retry.jitter", "true or false"),
        ({"max_attempts": 3, "retry_on": ["network"]}, "steps[0].retry.retry_on[0]", "external, system, user"),
        ({"max_attempts": 3, "retry_on": []}, "steps[0].retry.retry_on", "non-empty"),
        ({"max_attempts": 3, "tries": 2}, "steps[0].retry.tries", "unknown field"),
        ("3 times", "steps[0].retry", "must be an object"),
    ],
)
def test_a_bad_step_policy_is_refused_naming_the_field(retry, field, words):
    errors = errors_of({"steps": [get(retry)]})
    assert field in errors and words in errors[field], errors


def test_a_bad_workflow_default_is_refused_naming_the_field():
    errors = errors_of({"retry": {"max_attempts": 99}, "steps": [get()]})
    assert "between 1 and 10" in errors["retry.max_attempts"]


def test_a_retry_on_a_post_whose_receiver_does_not_honour_keys_is_refused():
    errors = errors_of({"steps": [get({"max_attempts": 3}, method="POST")]})
    assert "not idempotent" in errors["steps[0].retry"]
    # Declared either way, it is accepted.
    validate_definition({"steps": [get({"max_attempts": 3}, method="POST", idempotency_key_honoured=True)]})
    step = get({"max_attempts": 3}, method="PATCH")
    step["idempotent"] = True
    validate_definition({"steps": [step]})


def test_a_good_policy_is_kept_in_the_normalised_definition():
    valid = validate_definition({"retry": {"max_attempts": 2}, "steps": [get({"max_attempts": 4, "delay_s": 0.5})]})
    assert valid["retry"] == {"max_attempts": 2}
    assert valid["steps"][0]["retry"] == {"max_attempts": 4, "delay_s": 0.5}
    assert policy_for(valid["steps"][0], valid["retry"]).max_attempts == 4


def test_idempotent_must_be_a_boolean():
    step = get()
    step["idempotent"] = "yes"
    assert errors_of({"steps": [step]})["steps[0].idempotent"] == "must be true or false"


@pytest.mark.parametrize(
    ("step", "safe"),
    [
        ({"id": "t", "action": "transform", "config": {"output": 1}}, True),
        ({"id": "d", "action": "delay", "config": {"seconds": 1}}, True),
        ({"id": "c", "action": "condition", "config": {"left": 1, "op": "truthy"}}, True),
        (get(), True),
        (get(method="HEAD"), True),
        (get(method="PUT"), True),
        (get(method="DELETE"), True),
        (get(method="POST"), False),
        (get(method="PATCH"), False),
        (get(method="POST", idempotency_key_honoured=True), True),
        (get(method="{{ input.method }}"), False),
        ({**get(), "idempotent": False}, False),
        ({"id": "p", "action": "python", "config": {"callable": "workflows.actions.examples.add_numbers"}}, True),
        ({"id": "p", "action": "python", "config": {"callable": "workflows.actions.examples.fail"}}, False),
    ],
)
def test_each_action_declares_whether_repeating_it_is_safe(step, safe, settings):
    settings.PYTHON_CALLABLE_ALLOWLIST = ["workflows.actions.examples.add_numbers", "workflows.actions.examples.fail"]
    assert step_idempotent(step) is safe
