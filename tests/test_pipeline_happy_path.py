"""A manual run goes producer → SQS → real worker → success, in both runtimes."""

import pytest

from executions.enqueue import enqueue
from executions.models import Step
from executions.outputs import run_output
from tests.e2e import moves, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("runtime", ["isolated", "inline"])
def test_a_manual_run_reaches_success_through_a_real_worker(pipeline, runtime):
    pipeline.worker(concurrency=1)
    workflow = pipeline.workflow(
        {
            "steps": [
                {"id": "add", "action": "python", "config": {
                    "callable": "workflows.actions.examples.add_numbers", "kwargs": {"a": "{{ input.a }}", "b": 2}}},
                {"id": "shape", "action": "transform", "config": {"output": {"total": "{{ steps.add.output.sum }}"}}},
            ]
        },
        runtime=runtime,
    )  # fmt: skip
    execution = enqueue(workflow, trigger_type="manual", input={"a": 40}).execution

    execution = wait_status(execution.pk)
    assert execution.status == "success", execution.error_message
    assert run_output(execution)["result"] == {"total": 42}
    assert list(Step.objects.filter(execution=execution).values_list("step_id", "status")) == [
        ("add", "success"),
        ("shape", "success"),
    ]
    assert moves(execution) == ["create", "claim", "complete"]
    assert pipeline.metric("conveyor_claims_total", outcome="claimed") == 1
    assert pipeline.metric("conveyor_transitions_total", from_status="running", to_status="success") == 1
