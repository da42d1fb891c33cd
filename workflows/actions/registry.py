"""The action registry: action name → Action class (DESIGN.md §5).

An action validates its own config (`validate_config`, at save time on the config as
written and again at run time on the rendered config) and runs it (`run`). The engine
owns templates, branching, recording and classification; an action only raises typed
errors (or lets an exception escape, which the classifier reads as the step's own).
"""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from workflows.templates import is_template

# Built-ins are named by dotted path and imported on first use, so importing the registry
# (models → definitions → registry) never drags in an HTTP client at start-up.
BUILTIN_ACTIONS: dict[str, str] = {
    "condition": "workflows.actions.condition.ConditionAction",
    "delay": "workflows.actions.delay.DelayAction",
    "http_request": "workflows.actions.http.HttpRequestAction",
    "python": "workflows.actions.python_callable.PythonCallableAction",
    "transform": "workflows.actions.transform.TransformAction",
}

END = "end"  # a jump target that ends the run


@dataclass(frozen=True)
class StepContext:
    """What an action may know about the run it serves."""

    execution_id: str
    step_id: str
    workflow_id: int | None = None
    organization_id: int | None = None
    deadline: float | None = None  # time.monotonic() value
    # The run whose id keys this step's Idempotency-Key: the run itself, or the run a
    # resume continues (so a receiver that honours keys does not repeat the step).
    idempotency_base: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.idempotency_base or self.execution_id}:{self.step_id}"

    def remaining(self) -> float | None:
        """Seconds left before the run's deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()


class Action(ABC):
    name: ClassVar[str]
    # Config keys that name other steps (jumps); definition validation checks them.
    jump_fields: ClassVar[tuple[str, ...]] = ()
    allowed_fields: ClassVar[tuple[str, ...]] = ()
    required_fields: ClassVar[tuple[str, ...]] = ()
    # An action whose repetition is safe whatever its config (no effect outside the run).
    idempotent_always: ClassVar[bool] = False

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, str]:
        """Field name → problem, empty when the config is usable. Values that are
        templates cannot be checked before rendering and are accepted here. This one
        checks the fields are known and the required ones there; actions add their own."""
        return self.field_problems(config)

    @abstractmethod
    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        """Run with the rendered config; return a JSON-serialisable output."""

    def idempotent(self, config: Mapping[str, Any]) -> bool:
        """Whether running this step again (a retry, a resume) is safe for the config as
        written. False unless the action says otherwise: repeating must be declared."""
        return self.idempotent_always

    def jump_targets(self, config: Mapping[str, Any]) -> dict[str, str]:
        return {field: config[field] for field in self.jump_fields if isinstance(config.get(field), str)}

    def next_target(self, config: Mapping[str, Any], output: Any) -> str | None:
        """The step id (or END) to continue with after this step, or None for the default
        (the step's `next`, else the following step)."""
        return None

    def field_problems(self, config: Mapping[str, Any]) -> dict[str, str]:
        # A misspelt optional field would otherwise be ignored without a word.
        allowed = ", ".join(self.allowed_fields)
        problems = {key: f"unknown field (allowed: {allowed})" for key in config if key not in self.allowed_fields}
        problems.update({key: "is required" for key in self.required_fields if key not in config})
        return problems


class UnknownAction(KeyError):
    pass


@cache
def _load(dotted: str) -> type[Action]:
    module_name, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def action_names() -> list[str]:
    return sorted(BUILTIN_ACTIONS)


def get_action_class(name: str) -> type[Action]:
    if not isinstance(name, str) or name not in BUILTIN_ACTIONS:
        raise UnknownAction(name)
    return _load(BUILTIN_ACTIONS[name])


def get_action(name: str) -> Action:
    return get_action_class(name)()


# --- small validation helpers shared by the actions --------------------------------------
def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_number(
    config: Mapping[str, Any], field: str, errors: dict[str, str], *, minimum: float, maximum: float | None = None
) -> None:
    value = config.get(field)
    if value is None or is_template(value):
        return
    if not is_number(value):
        errors[field] = "must be a number"
    elif value < minimum:
        errors[field] = f"must be at least {minimum:g}"
    elif maximum is not None and value > maximum:
        errors[field] = f"must be at most {maximum:g}"
