"""Hostile or careless input gets a clear 4xx and changes nothing: text PostgreSQL cannot
store (a NUL character, a lone surrogate, anywhere in keys, values and text fields), JSON
nested deeper than the limit (the parser's RecursionError included), definitions beyond
their limits, bodies that are not JSON. Sent as real requests to the real views."""

import json

import pytest

from executions.models import Execution
from tests.factories import NOOP_DEFINITION, make_workflow
from tests.ui import api_client, member
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def caller():
    user = member()
    return api_client(user), user.membership.organization


def post_raw(api, url, body: bytes, content_type="application/json"):
    return api.generic("POST", url, data=body, content_type=content_type)


def body_of(**fields) -> bytes:
    return json.dumps({"name": "ok", "definition": NOOP_DEFINITION, **fields}).encode()


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (body_of(name="a\x00b"), "name", "NUL character"),
        (body_of(description="\ud800"), "description", "lone surrogate"),
        (
            body_of(definition={"steps": [{"id": "t", "action": "transform", "config": {"output": {"k": "\x00"}}}]}),
            "definition.steps[0].config.output.k",
            "NUL character",
        ),
        (
            body_of(definition={"steps": [{"id": "t", "action": "transform", "config": {"output": {"\udfff": 1}}}]}),
            "definition.steps[0].config.output.\\udfff",
            "lone surrogate",
        ),
        (b'{"name": "x", "n": NaN}', "n", "finite number"),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, "body", "nested deeper than 32 levels"),
    ],
    ids=["nul-name", "surrogate-description", "nul-in-definition", "surrogate-key", "nan", "deep-body"],
)
def test_a_workflow_that_cannot_be_stored_is_a_400_naming_the_field_and_nothing_is_saved(caller, body, field, problem):
    api, _ = caller
    response = post_raw(api, "/api/workflows/", body)

    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors and problem in errors[field][0], errors
    assert not Workflow.objects.exists()


def test_a_definition_deeper_than_the_limit_is_refused_before_it_is_ever_run(caller):
    api, _ = caller
    deep: object = 1
    for _ in range(40):
        deep = {"k": deep}
    definition = {"steps": [{"id": "t", "action": "transform", "config": {"output": deep}}]}

    response = post_raw(api, "/api/workflows/", body_of(definition=definition))

    assert response.status_code == 400
    assert "nested deeper than 32 levels" in json.dumps(response.json())
    assert not Workflow.objects.exists()


def test_a_definition_larger_than_the_limit_is_refused(caller, settings):
    api, _ = caller
    settings.MAX_DEFINITION_BYTES = 4096
    big = {"steps": [{"id": "t", "action": "transform", "config": {"output": "x" * 5000}}]}

    response = post_raw(api, "/api/workflows/", body_of(definition=big))

    assert response.status_code == 400 and "more than the limit of 4096" in json.dumps(response.json())


def test_a_change_refused_for_its_definition_leaves_the_workflow_as_it_was(caller):
    api, org = caller
    workflow = make_workflow(org, name="keep")
    bad = {
        "name": "renamed",
        "definition": {"steps": [{"id": "t", "action": "transform", "config": {"output": "\x00"}}]},
    }

    response = api.generic("PATCH", f"/api/workflows/{workflow.pk}/", json.dumps(bad), content_type="application/json")

    assert response.status_code == 400
    workflow.refresh_from_db()
    assert (workflow.name, workflow.definition, workflow.version) == ("keep", NOOP_DEFINITION, 1)


@pytest.mark.parametrize(("payload", "field"), [({"order": "7\x00"}, "input.order"), ({"\ud800": 1}, "input.\\ud800")])
def test_a_run_input_that_cannot_be_stored_is_a_400_and_makes_no_run(caller, payload, field):
    api, org = caller
    workflow = make_workflow(org)

    response = post_raw(api, f"/api/workflows/{workflow.pk}/runs/", json.dumps({"input": payload}).encode())

    assert response.status_code == 400 and field in response.json(), response.content
    assert not Execution.objects.exists()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_body_that_is_not_json_is_a_415(caller, content_type):
    api, org = caller
    workflow = make_workflow(org)
    response = post_raw(api, f"/api/workflows/{workflow.pk}/runs/", b"input=1", content_type=content_type)
    assert response.status_code == 415
    assert not Execution.objects.exists()


@pytest.mark.parametrize(
    "url", ["/api/runs/?status=error%00", "/api/runs/?workflow=%00", "/api/runs/?q%00=1", "/api/workflows/%00/"]
)
def test_a_nul_in_the_url_is_a_400_naming_where(caller, url):
    api, _ = caller
    response = api.get(url)
    assert response.status_code in (400, 404), response.content
    if response.status_code == 400:
        assert "NUL character" in json.dumps(response.json())
