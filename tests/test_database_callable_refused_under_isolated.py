"""A python callable registered as needing the database (`@registered(database=True)`)
runs inline only: a workflow that asks for it under the isolated runtime (its own, or the
platform default) is refused when saved, with an error on the step's callable naming the
step; in a sealed child (a trigger that overrides the runtime) it fails as the workflow's
config, never reaching for a database the child does not have."""

import pytest

from failures.errors import InvalidDefinition, StepConfigError
from tests.factories import make_workflow
from tests.ui import api_client, member
from workflows.actions.python_callable import PythonCallableAction
from workflows.actions.registry import StepContext
from workflows.runtime_settings import settings as runtime_settings

pytestmark = [pytest.mark.django_db]

DATABASE_CALLABLE = "workflows.actions.examples.query_missing_table"
ASKS_FOR_THE_DATABASE = {
    "steps": [
        {"id": "first", "action": "transform", "config": {"output": 1}},
        {"id": "lookup", "action": "python", "config": {"callable": DATABASE_CALLABLE}},
    ]
}


@pytest.fixture(autouse=True)
def _allow(settings):
    settings.PYTHON_CALLABLE_ALLOWLIST = [DATABASE_CALLABLE, "workflows.actions.examples.add_numbers"]
    settings.DEFAULT_RUNTIME = "isolated"


@pytest.mark.parametrize("runtime", ["isolated", ""])
def test_a_database_callable_under_the_isolated_runtime_is_refused_naming_the_step(runtime):
    with pytest.raises(InvalidDefinition) as refused:
        make_workflow(definition=ASKS_FOR_THE_DATABASE, runtime=runtime)

    message = refused.value.errors["steps[1].config.callable"]
    assert "'lookup'" in message and DATABASE_CALLABLE in message and "inline" in message
    assert list(refused.value.errors) == ["steps[1].config.callable"]


def test_the_same_workflow_under_the_inline_runtime_is_accepted():
    assert make_workflow(definition=ASKS_FOR_THE_DATABASE, runtime="inline").pk


def test_a_callable_not_registered_for_the_database_is_accepted_under_isolated():
    definition = {
        "steps": [
            {
                "id": "add",
                "action": "python",
                "config": {"callable": "workflows.actions.examples.add_numbers", "kwargs": {"a": 1, "b": 2}},
            }
        ]
    }
    assert make_workflow(definition=definition, runtime="isolated").pk


def test_the_api_refuses_it_with_the_error_on_the_steps_callable():
    alice = member(username="alice")
    response = api_client(alice).post(
        "/api/workflows/", {"name": "lookup", "definition": ASKS_FOR_THE_DATABASE}, format="json"
    )

    assert response.status_code == 400, response.content
    errors = response.json()["definition"]["steps[1].config.callable"]
    assert "'lookup'" in errors[0] and "inline" in errors[0]

    accepted = api_client(alice).post(
        "/api/workflows/", {"name": "lookup", "definition": ASKS_FOR_THE_DATABASE, "runtime": "inline"}, format="json"
    )
    assert accepted.status_code == 201, accepted.content


def test_in_a_sealed_child_the_database_callable_fails_as_the_workflows_config():
    runtime_settings.install(runtime_settings.snapshot())
    try:
        with pytest.raises(StepConfigError, match="runs only under the inline runtime"):
            PythonCallableAction().run({"callable": DATABASE_CALLABLE}, StepContext(execution_id="x", step_id="lookup"))
    finally:
        runtime_settings._handed = None
