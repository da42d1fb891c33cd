from workflows.actions.registry import StepContext
from workflows.actions.transform import TransformAction
from workflows.engine import RunContext, run_definition


class Recorder:
    def __init__(self):
        self.finished = []

    def start_step(self, step_id, action, position):
        return True

    def finish_step(self, step_id, *, status, output, error_type="", error_message=""):
        self.finished.append((step_id, status, output))


def test_the_rendered_output_is_the_steps_output():
    value = {"a": [1, {"b": None}], "c": "text"}
    assert TransformAction().run({"output": value}, StepContext("run-1", "t")) == value


def test_a_transform_reshapes_the_input_and_earlier_outputs_keeping_json_types():
    definition = {
        "steps": [
            {"id": "first", "action": "transform", "config": {"output": {"total": "{{ input.order.total }}"}}},
            {
                "id": "shape",
                "action": "transform",
                "config": {
                    "output": {
                        "amount": "{{ steps.first.output.total }}",
                        "label": "order of {{ steps.first.output.total }} EUR",
                        "lines": ["{{ input.order.lines[0] }}", "{{ run.id }}"],
                    }
                },
            },
        ]
    }
    context = RunContext("run-9", 1, 1, input={"order": {"total": 12.5, "lines": [{"sku": "A"}]}}, secrets={})
    result = run_definition(definition, context, Recorder())["result"]
    assert result == {"amount": 12.5, "label": "order of 12.5 EUR", "lines": [{"sku": "A"}, "run-9"]}


def test_output_is_required_and_other_fields_are_refused():
    assert TransformAction().validate_config({}) == {"output": "is required"}
    assert list(TransformAction().validate_config({"output": 1, "extra": 2})) == ["extra"]


def test_a_literal_null_output_is_allowed():
    assert TransformAction().validate_config({"output": None}) == {}
