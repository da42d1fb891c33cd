"""python: call a function the platform registered, never code from users.

    {"callable": "workflows.actions.examples.add_numbers", "kwargs": {"a": 1, "b": 2}}

Only dotted paths listed in settings.PYTHON_CALLABLE_ALLOWLIST are accepted, when the
workflow is saved and again when the step runs (the list may have shrunk since).

A callable that needs the platform's database is registered as such with
`@registered(database=True)`: it runs only under the inline runtime (the isolated child has
no database and no platform settings), a workflow that asks for it under the isolated
runtime is refused when it is saved (workflows/definitions.py), and a run that reaches it
in an isolated child anyway (a per-run runtime override) fails as the workflow's config.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from failures.classifier import ORIGIN_STEP, classify
from failures.errors import ConfigurationFault, ConveyorError, StepConfigError, UserCodeError
from failures.statuses import ErrorType
from workflows.actions.registry import Action, StepContext
from workflows.runtime_settings import settings

DATABASE_FLAG = "conveyor_needs_database"
F = TypeVar("F", bound=Callable[..., Any])


def registered(*, database: bool = False) -> Callable[[F], F]:
    """Mark a callable for the `python` action; `database=True`: it uses the platform's
    database, so it runs inline only."""

    def mark(function: F) -> F:
        setattr(function, DATABASE_FLAG, database)
        return function

    return mark


IDEMPOTENT_ATTRIBUTE = "conveyor_idempotent"


def idempotent(function: Any) -> Any:
    """Register an allow-listed callable as safe to repeat (a retry or a resume may call
    it again): `@idempotent` above its definition."""
    setattr(function, IDEMPOTENT_ATTRIBUTE, True)
    return function


def allowed_callables() -> list[str]:
    return list(settings.PYTHON_CALLABLE_ALLOWLIST)


def needs_database(dotted: str) -> bool:
    """Whether the allow-listed callable `dotted` was registered with database=True. One
    that does not import is not judged here: running it reports that (C-0003)."""
    try:
        function = _load(dotted)
    except ConfigurationFault:
        return False
    return bool(getattr(function, DATABASE_FLAG, False))


def _load(dotted: str) -> Any:
    module_name, _, attr = dotted.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        # The allow-list is platform configuration: an entry that does not import is ours.
        raise ConfigurationFault(f"allow-listed callable {dotted} cannot be imported: {exc}") from exc
    if not callable(function):
        raise ConfigurationFault(f"allow-listed {dotted} is not callable")
    return function


class PythonCallableAction(Action):
    name = "python"
    allowed_fields = ("callable", "kwargs")
    required_fields = ("callable",)

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, str]:
        errors = self.field_problems(config)
        dotted = config.get("callable")
        allowed = allowed_callables()
        if dotted is not None and (not isinstance(dotted, str) or dotted not in allowed):
            # Literal only: a template could smuggle in a path chosen at run time.
            errors["callable"] = f"must be one of the allowed callables: {', '.join(allowed) or '(none)'}"
        kwargs = config.get("kwargs", {})
        if not isinstance(kwargs, dict):
            errors["kwargs"] = "must be an object"
        return errors

    def idempotent(self, config: Mapping[str, Any]) -> bool:
        dotted = config.get("callable")
        if not isinstance(dotted, str) or dotted not in allowed_callables():
            return False
        try:
            function = _load(dotted)
        except ConfigurationFault:
            return False
        return getattr(function, IDEMPOTENT_ATTRIBUTE, False) is True

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        dotted = config.get("callable")
        if not isinstance(dotted, str) or dotted not in allowed_callables():
            raise StepConfigError(f"callable {dotted!r} is not in the platform's allow-list")
        kwargs = config.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise StepConfigError("config.kwargs: must be an object")
        function = _load(dotted)
        if settings.sealed and getattr(function, DATABASE_FLAG, False):
            raise StepConfigError(
                f"callable {dotted} needs the database and runs only under the inline runtime; "
                "set the workflow's runtime to inline"
            )
        try:
            result = function(**kwargs)
        except ConveyorError:
            raise
        except Exception as exc:
            # The platform's own failures inside the callable (its database, its secret
            # store, MemoryError) stay the platform's, and a network failure stays external:
            # only what the classifier calls the step's own fault becomes UserCodeError.
            if classify(exc, ORIGIN_STEP).error_type != ErrorType.USER:
                raise
            raise UserCodeError(f"{dotted} raised {type(exc).__name__}: {exc}") from exc
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise UserCodeError(f"{dotted} returned a value that is not JSON: {exc}") from None
        return result
