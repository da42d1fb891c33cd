"""A step whose output PostgreSQL cannot store (a NUL character, a NaN, nesting past what
the walks after it can take) fails as a user error naming the step and where in its output,
instead of reaching the database and being recorded as the platform's C-0002."""

import pytest
from django.test import override_settings

from executions.models import Step
from messaging import messages
from pipeline.consume import Outcome, consume
from tests.factories import make_execution, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


def run_inline(definition: dict):
    execution = make_execution(make_workflow(definition=definition), runtime="inline")
    assert consume(messages.build(execution.id, execution.dispatch_key), hostname="test") == Outcome.CLAIMED
    execution.refresh_from_db()
    return execution


@override_settings(PYTHON_CALLABLE_ALLOWLIST=["tests.callables.unstorable"])
@pytest.mark.parametrize(
    ("kind", "where"),
    [("nul", "output.text contains a NUL character"), ("nan", "output.ratio must be a finite number")],
)
def test_an_output_that_cannot_be_stored_is_the_steps_user_error(kind, where):
    call = {"callable": "tests.callables.unstorable", "kwargs": {"kind": kind}}
    run = run_inline({"steps": [{"id": "odd", "action": "python", "config": call}]})

    assert (run.status, run.error_type, run.error_code) == ("error", "user", "")
    assert "step 'odd': its output cannot be stored" in run.error_message and where in run.error_message
    step = Step.objects.get(execution=run)
    assert (step.status, step.output) == ("error", None)


def test_an_output_nesting_the_previous_one_at_every_step_may_be_deeper_than_an_input():
    steps = [{"id": "s0", "action": "transform", "config": {"output": 0}}]
    for k in range(1, 40):  # 40 levels, past CONVEYOR_JSON_MAX_DEPTH (32)
        steps.append(
            {"id": f"s{k}", "action": "transform", "config": {"output": {"in": f"{{{{ steps.s{k - 1}.output }}}}"}}}
        )

    run = run_inline({"steps": steps})

    assert run.status == "success", run.error_message
