"""Workflow definitions: the JSON format and its validation (DESIGN.md §5).

    {"steps": [
        {"id": "fetch", "action": "http_request", "config": {"url": "https://..."}},
        {"id": "check", "action": "condition",
         "config": {"left": "{{ steps.fetch.output.status }}", "op": "eq", "right": 200,
                    "then": "notify", "else": "end"}},
        {"id": "notify", "action": "http_request", "config": {...}, "next": "end"}
    ]}

A step may carry a retry policy (`retry`) and declare whether repeating it is safe
(`idempotent`); the definition's `retry` is the default for its steps that are safe to
repeat (workflows/retries.py).

Steps run in list order. A step's `next` (or a condition's `then`/`else`) jumps forward to
a later step or to "end"; jumping backwards is refused, so every run terminates. A
template may only reference a step that comes earlier in the list.

`validate_definition` collects every problem at once into InvalidDefinition.errors, keyed
by where it is (`steps[1].config.url`), so an editor can show each next to its field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from failures.errors import InvalidDefinition, TemplateError
from workflows import payloads
from workflows.actions.registry import END, UnknownAction, action_names, get_action
from workflows.retries import policy_problems, step_idempotent
from workflows.runtime_settings import settings
from workflows.templates import check_reference, iter_strings, parse

STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
STEP_FIELDS = ("id", "action", "config", "next", "retry", "idempotent")
DEFINITION_FIELDS = ("steps", "retry")


def _id_problem(step_id: Any) -> str | None:
    if not isinstance(step_id, str) or not STEP_ID.match(step_id):
        return "must start with a letter and hold only letters, digits, _ or - (at most 64 characters)"
    if step_id == END:
        return f'"{END}" is reserved (it ends the run)'
    return None


def validate_definition(definition: Any, *, runtime: str | None = None) -> dict[str, Any]:
    """Return the normalised definition, or raise InvalidDefinition with every problem.
    `runtime` (the one the workflow's runs get): also refuse what cannot run there."""
    if not isinstance(definition, dict):
        raise InvalidDefinition({"definition": 'must be a JSON object like {"steps": [...]}'})
    try:
        payloads.check(definition)
    except payloads.UnsafeJSON as unsafe:
        raise InvalidDefinition({path or "definition": problem for path, problem in unsafe.errors.items()}) from None
    size = len(json.dumps(definition, separators=(",", ":")).encode())
    if size > settings.MAX_DEFINITION_BYTES:
        raise InvalidDefinition(
            {"definition": f"is {size} bytes as JSON, more than the limit of {settings.MAX_DEFINITION_BYTES}"}
        )
    errors: dict[str, str] = {}
    for key in definition:
        if key not in DEFINITION_FIELDS:
            errors[str(key)] = f"unknown field (allowed: {', '.join(DEFINITION_FIELDS)})"
    steps = definition.get("steps")
    if steps is None:
        errors["steps"] = "is required"
    elif not isinstance(steps, list):
        errors["steps"] = "must be a list of steps"
    elif not steps:
        errors["steps"] = "must hold at least one step"
    elif len(steps) > settings.MAX_STEPS_PER_WORKFLOW:
        errors["steps"] = f"at most {settings.MAX_STEPS_PER_WORKFLOW} steps are allowed, got {len(steps)}"
    if "steps" in errors:
        raise InvalidDefinition(errors)
    default_retry = definition.get("retry")
    if default_retry is not None:
        for where_in_policy, policy_problem in policy_problems(default_retry).items():
            errors[f"retry.{where_in_policy}" if where_in_policy else "retry"] = policy_problem

    assert isinstance(steps, list)  # refused above otherwise
    positions: dict[str, int] = {}
    for i, step in enumerate(steps):
        if isinstance(step, dict) and _id_problem(step.get("id")) is None and step["id"] not in positions:
            positions[step["id"]] = i

    normalised: list[dict[str, Any]] = []
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        if not isinstance(step, dict):
            errors[where] = "must be an object with id, action and config"
            continue
        for key in step:
            if key not in STEP_FIELDS:
                errors[f"{where}.{key}"] = f"unknown field (allowed: {', '.join(STEP_FIELDS)})"
        step_id = step.get("id")
        if step_id is None:
            errors[f"{where}.id"] = "is required"
        elif problem := _id_problem(step_id):
            errors[f"{where}.id"] = problem
        elif positions[step_id] != i:
            errors[f"{where}.id"] = f"duplicate id {step_id!r} (also steps[{positions[step_id]}])"

        config = step.get("config", {})
        if not isinstance(config, dict):
            errors[f"{where}.config"] = "must be an object"
            config = {}
        action_name = step.get("action")
        action = None
        if action_name is None:
            errors[f"{where}.action"] = f"is required (one of {', '.join(action_names())})"
        else:
            try:
                action = get_action(action_name)
            except UnknownAction:
                known = ", ".join(action_names())
                errors[f"{where}.action"] = f"unknown action {action_name!r}; known actions: {known}"
        if action is not None:
            for field, problem in action.validate_config(config).items():
                errors.setdefault(f"{where}.config.{field}", problem)

        jumps: dict[str, Any] = {}
        if "next" in step:
            jumps[f"{where}.next"] = step["next"]
        if action is not None:
            jumps.update({f"{where}.config.{field}": t for field, t in action.jump_targets(config).items()})
        for key, target in jumps.items():
            if problem := _jump_problem(target, i, positions):
                errors.setdefault(key, problem)

        for location, text in iter_strings(config):
            if problem := _template_problem(text, i, positions):
                errors.setdefault(f"{where}.config.{location}", problem)

        if "idempotent" in step and not isinstance(step["idempotent"], bool):
            errors[f"{where}.idempotent"] = "must be true or false"
        if step.get("retry") is not None:
            problems = policy_problems(step["retry"])
            for where_in_policy, policy_problem in problems.items():
                errors[f"{where}.retry.{where_in_policy}" if where_in_policy else f"{where}.retry"] = policy_problem
            if not problems and step["retry"]["max_attempts"] > 1 and action is not None and not step_idempotent(step):
                # A retry would repeat work nobody said was safe to repeat.
                errors[f"{where}.retry"] = (
                    'this step is not idempotent, so it cannot be retried: declare "idempotent": true, or for '
                    'an HTTP POST/PATCH "idempotency_key_honoured": true in its config if the receiver '
                    "de-duplicates on the Idempotency-Key header"
                )

        entry: dict[str, Any] = {"id": step_id, "action": action_name, "config": config}
        for optional in ("next", "retry", "idempotent"):
            if optional in step:
                entry[optional] = step[optional]
        normalised.append(entry)

    if runtime is not None:
        for key, problem in runtime_problems(normalised, runtime).items():
            errors.setdefault(key, problem)
    if errors:
        raise InvalidDefinition(errors)
    result: dict[str, Any] = {"steps": normalised}
    if default_retry is not None:
        result["retry"] = default_retry
    return result


ISOLATED = "isolated"


def runtime_problems(steps: list[dict[str, Any]], runtime: str) -> dict[str, str]:
    """What in `steps` cannot run under `runtime`: the isolated child has no database, so a
    python callable registered with database=True is refused there, naming the step."""
    if runtime != ISOLATED:
        return {}
    from workflows.actions.python_callable import needs_database

    problems: dict[str, str] = {}
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or step.get("action") != "python":
            continue
        config = step.get("config")
        dotted = config.get("callable") if isinstance(config, dict) else None
        if isinstance(dotted, str) and needs_database(dotted):
            problems[f"steps[{i}].config.callable"] = (
                f"step {step.get('id')!r} calls {dotted}, which needs the database and runs only under the "
                "inline runtime; set the workflow's runtime to inline"
            )
    return problems


def referenced_secrets(definition: Any) -> frozenset[str]:
    """The names of the secrets the definition's templates reference ({{ secrets.NAME }}):
    a run is handed these and no other. A template that does not parse references none
    (the run fails on it before any secret is used)."""
    names: set[str] = set()
    steps = definition.get("steps") if isinstance(definition, dict) else None
    for step in steps if isinstance(steps, list) else []:
        config = step.get("config") if isinstance(step, dict) else None
        for _, text in iter_strings(config):
            if "{{" not in text:
                continue
            try:
                parts = parse(text)
            except TemplateError:
                continue
            for part in parts:
                if not isinstance(part, str) and part.root == "secrets" and part.path and isinstance(part.path[0], str):
                    names.add(part.path[0])
    return frozenset(names)


def _jump_problem(target: Any, position: int, positions: dict[str, int]) -> str | None:
    if target == END:
        return None
    if not isinstance(target, str):
        return f'must be a step id or "{END}"'
    if target not in positions:
        return f"no step has the id {target!r}"
    if positions[target] <= position:
        # Only forward jumps: a run can never loop.
        return f"must jump forward; step {target!r} is at steps[{positions[target]}], not after this step"
    return None


def _template_problem(text: str, position: int, positions: dict[str, int]) -> str | None:
    if "{{" not in text:
        return None
    try:
        parts = parse(text)
    except TemplateError as exc:
        return f"template does not parse: {exc.message}"
    for part in parts:
        if isinstance(part, str):
            continue
        if problem := check_reference(part):
            return problem
        step_id = part.step_id
        if step_id is not None and positions.get(step_id, position) >= position:
            return (
                f"template {{{{ {part.source} }}}} references step {step_id!r}, "
                "which does not come earlier in the workflow"
            )
    return None
