import pytest

from failures.classifier import ORIGIN_STEP, classify
from failures.errors import ConditionFailed, StepConfigError
from workflows.actions.condition import ConditionAction, evaluate
from workflows.actions.registry import StepContext

CTX = StepContext(execution_id="run-1", step_id="check")


@pytest.mark.parametrize(
    ("op", "left", "right", "expected"),
    [
        ("eq", 200, 200, True),
        ("eq", "a", "b", False),
        ("eq", {"a": [1]}, {"a": [1]}, True),
        ("ne", 1, 2, True),
        ("gt", 3, 2, True),
        ("gt", 2, 2, False),
        ("gte", 2, 2, True),
        ("lt", 1.5, 2, True),
        ("lte", "abc", "abd", True),
        ("contains", "hello world", "world", True),
        ("contains", ["a", "b"], "c", False),
        ("contains", {"key": 1}, "key", True),
        ("truthy", [0], None, True),
        ("truthy", "", None, False),
        ("falsy", 0, None, True),
        ("falsy", {"a": 1}, None, False),
    ],
)
def test_each_operator_compares_json_values(op, left, right, expected):
    assert evaluate(op, left, right) is expected


def test_true_is_not_equal_to_one_as_in_json():
    assert evaluate("eq", True, 1) is False
    assert evaluate("contains", [1, 2], True) is False


@pytest.mark.parametrize(("op", "left", "right"), [("gt", "5", 3), ("lt", None, 1), ("contains", 5, 5)])
def test_operands_that_cannot_be_compared_are_the_workflows_config_error(op, left, right):
    with pytest.raises(StepConfigError) as raised:
        evaluate(op, left, right)
    assert classify(raised.value, ORIGIN_STEP).error_type == "user"


def test_the_output_is_the_result_and_the_branch_follows_it():
    action = ConditionAction()
    config = {"left": 5, "op": "gt", "right": 3, "then": "big", "else": "small"}
    output = action.run(config, CTX)
    assert output == {"result": True}
    assert action.next_target(config, output) == "big"
    assert action.next_target(config, {"result": False}) == "small"


def test_without_branches_the_default_next_step_applies():
    assert ConditionAction().next_target({"left": 1, "op": "truthy"}, {"result": True}) is None


def test_a_false_condition_with_fail_when_false_fails_the_run_as_the_workflows_error():
    config = {"left": 0, "op": "gt", "right": 10, "fail_when_false": True, "message": "stock is too low"}
    with pytest.raises(ConditionFailed) as raised:
        ConditionAction().run(config, CTX)
    assert raised.value.message == "stock is too low"
    assert classify(raised.value, ORIGIN_STEP).error_type == "user"


def test_a_false_condition_without_a_message_says_what_was_compared():
    with pytest.raises(ConditionFailed, match=r"condition failed: 0 gt 10 is false"):
        ConditionAction().run({"left": 0, "op": "gt", "right": 10, "fail_when_false": True}, CTX)


def test_a_true_condition_with_fail_when_false_passes():
    assert ConditionAction().run({"left": 1, "op": "truthy", "fail_when_false": True}, CTX) == {"result": True}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"left": 1}, "op"),
        ({"op": "truthy"}, "left"),
        ({"left": 1, "op": "eq"}, "right"),
        ({"left": 1, "op": "truthy", "then": "{{ input.next }}"}, "then"),
        ({"left": 1, "op": "truthy", "else": 3}, "else"),
        ({"left": 1, "op": "truthy", "fail_when_false": "yes"}, "fail_when_false"),
        ({"left": 1, "op": "truthy", "message": 5}, "message"),
    ],
)
def test_validation_names_the_bad_field(config, field):
    assert list(ConditionAction().validate_config(config)) == [field]


def test_a_unary_operator_needs_no_right_side():
    assert ConditionAction().validate_config({"left": "{{ input.flag }}", "op": "falsy"}) == {}
