"""The admin's workflow form reads its JSON fields like every other entry: a definition
nested thousands deep or carrying text that cannot be stored is a form error naming where
(not Django's field's RecursionError, a 500), and nothing is saved. A NUL in a plain text
field is refused at the door with a 400 naming the field."""

import json

import pytest

from tests.factories import NOOP_DEFINITION, make_org
from tests.ui import staff_client
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

ADD = "/admin/executions/workflow/add/"


@pytest.fixture
def admin_client():
    client, _ = staff_client()
    return client


def form(org, **fields) -> dict:
    return {
        "organization": org.pk,
        "name": "wf",
        "description": "",
        "trigger_type": "manual",
        "trigger_config": "{}",
        "definition": json.dumps(NOOP_DEFINITION),
        "enabled": "on",
        "system_retry_max_attempts": "0",
        "system_retry_backoff_seconds": "30",
        **fields,
    }


def errors_of(response) -> dict:
    return {name: " ".join(errors) for name, errors in response.context["adminform"].form.errors.items()}


def test_a_valid_definition_is_saved(admin_client):
    org = make_org()
    response = admin_client.post(ADD, form(org))
    assert response.status_code == 302, errors_of(response)
    assert Workflow.objects.get().definition == NOOP_DEFINITION


@pytest.mark.parametrize(
    ("field", "text", "problem"),
    [
        ("definition", '{"steps":' + "[" * 3000 + "]" * 3000 + "}", "nested deeper than 32 levels"),
        ("trigger_config", "[" * 3000 + "]" * 3000, "nested deeper than 32 levels"),
        (
            "definition",
            '{"steps": [{"id": "t", "action": "transform", "config": {"output": {"k": "a\\u0000"}}}]}',
            "steps[0].config.output.k contains a NUL character",
        ),
        ("definition", '{"steps": [], "\\udfff": 1}', "\\udfff has a key that contains a lone surrogate"),
        ("definition", '{"steps": [NaN]}', "must be a finite number"),
    ],
    ids=["deep-definition", "deep-trigger-config", "nul-value", "surrogate-key", "nan"],
)
def test_json_that_cannot_be_stored_is_a_form_error_naming_where(admin_client, field, text, problem):
    org = make_org()
    response = admin_client.post(ADD, form(org, **{field: text}))

    assert response.status_code == 200  # the form again, with the error next to the field
    assert problem in errors_of(response)[field]
    assert not Workflow.objects.exists()


def test_a_nul_in_a_text_field_is_a_400_naming_the_field(admin_client):
    org = make_org()
    response = admin_client.post(ADD, form(org, name="a\x00b"))
    assert response.status_code == 400
    assert "form field &#x27;name&#x27; contains a NUL character" in response.content.decode()
    assert not Workflow.objects.exists()
