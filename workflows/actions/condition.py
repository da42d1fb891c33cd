"""condition: compare two values, branch on the result, or fail the run.

    {"left": "{{ steps.fetch.output.status }}", "op": "eq", "right": 200,
     "then": "notify", "else": "end", "fail_when_false": false, "message": "..."}

Output {"result": bool}. `then`/`else` name a later step (or "end"); when absent the run
continues with the step's `next` or the following step. With `fail_when_false`, a false
result fails the run as the workflow's own error (ConditionFailed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from failures.errors import ConditionFailed, StepConfigError
from workflows.actions.registry import Action, StepContext, is_number
from workflows.templates import is_template

UNARY_OPS = ("truthy", "falsy")
BINARY_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "contains")
OPS = BINARY_OPS + UNARY_OPS

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if is_number(value):
        return "number"
    names: dict[type, str] = {str: "string", list: "list", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _equal(left: Any, right: Any) -> bool:
    # JSON semantics: true is not 1, although Python says True == 1.
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return left == right


def evaluate(op: str, left: Any, right: Any = None) -> bool:
    """Pure comparison; StepConfigError when the operands cannot be compared with `op`."""
    if op == "eq":
        return _equal(left, right)
    if op == "ne":
        return not _equal(left, right)
    if op == "truthy":
        return bool(left)
    if op == "falsy":
        return not left
    if op in _ORDERING:
        comparable = (is_number(left) and is_number(right)) or (isinstance(left, str) and isinstance(right, str))
        if not comparable:
            raise StepConfigError(
                f"condition {op} cannot compare {_type_name(left)} with {_type_name(right)} "
                "(both must be numbers or both strings)"
            )
        return _ORDERING[op](left, right)
    if op == "contains":
        if isinstance(left, str):
            if not isinstance(right, str):
                raise StepConfigError(
                    f"condition contains: a string can only contain a string, not {_type_name(right)}"
                )
            return right in left
        if isinstance(left, list):
            return any(_equal(item, right) for item in left)
        if isinstance(left, dict):
            return isinstance(right, str) and right in left
        raise StepConfigError(f"condition contains needs a string, list or object on the left, not {_type_name(left)}")
    raise StepConfigError(f"unknown condition op {op!r}; use one of {', '.join(OPS)}")


class ConditionAction(Action):
    name = "condition"
    # Computes or waits only: repeating it is always safe.
    idempotent_always = True
    jump_fields = ("then", "else")
    allowed_fields = ("left", "op", "right", "then", "else", "fail_when_false", "message")

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, str]:
        errors = self.field_problems(config)
        op = config.get("op")
        if op is None:
            errors["op"] = f"is required (one of {', '.join(OPS)})"
        elif op not in OPS:
            errors["op"] = f"must be one of {', '.join(OPS)}"
        if "left" not in config:
            errors["left"] = "is required"
        if op in BINARY_OPS and "right" not in config:
            errors["right"] = f"is required for op {op}"
        for field in self.jump_fields:
            target = config.get(field)
            if target is not None and (not isinstance(target, str) or is_template(target)):
                # The graph must be known when the workflow is saved, so jumps are literal.
                errors[field] = 'must be a step id or "end" (templates are not allowed)'
        fail = config.get("fail_when_false", False)
        if not isinstance(fail, bool):
            errors["fail_when_false"] = "must be true or false"
        message = config.get("message")
        if message is not None and not isinstance(message, str):
            errors["message"] = "must be a string"
        return errors

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> dict[str, bool]:
        op = config.get("op")
        if op not in OPS:
            raise StepConfigError(f"config.op: must be one of {', '.join(OPS)}")
        result = evaluate(op, config.get("left"), config.get("right"))
        if not result and config.get("fail_when_false"):
            raise ConditionFailed(config.get("message") or self._default_message(op, config))
        return {"result": result}

    def next_target(self, config: Mapping[str, Any], output: Any) -> str | None:
        branch = "then" if output.get("result") else "else"
        target = config.get(branch)
        return target if isinstance(target, str) else None

    @staticmethod
    def _default_message(op: str, config: Mapping[str, Any]) -> str:
        left = config.get("left")
        if op in UNARY_OPS:
            return f"condition failed: {left!r} is not {op}"
        return f"condition failed: {left!r} {op} {config.get('right')!r} is false"
