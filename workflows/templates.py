"""A small, safe template renderer for step configs (DESIGN.md §5).

    {{ input.order.id }}   {{ steps.fetch.output.body.items[0] }}   {{ secrets.API_KEY }}   {{ run.id }}

Only dotted paths are understood: no expressions, no filters, no calls, no eval, so a
workflow author cannot run code through a template. A string that is exactly one template
keeps the JSON type of the value it names; a template embedded in other text is
stringified (JSON for non-strings). Substituted values are never rendered again, so data
coming from an input or a response cannot inject templates of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from failures.errors import TemplateError
from workflows.limits import Budget

ROOTS: tuple[str, ...] = ("input", "steps", "secrets", "run")
RUN_FIELDS: tuple[str, ...] = ("id", "workflow_id", "organization_id")

_OPEN, _CLOSE = "{{", "}}"
_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEGMENT = re.compile(
    r"""\.(?P<name>[A-Za-z0-9_\-]+)
      | \[(?P<index>\d+)\]
      | \[(?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\]""",
    re.VERBOSE,
)

PathItem = str | int


@dataclass(frozen=True)
class Reference:
    """One `{{ ... }}`: its root (input, steps, secrets, run) and the path below it."""

    root: str
    path: tuple[PathItem, ...]
    source: str  # the expression as written, for messages

    @property
    def step_id(self) -> str | None:
        if self.root == "steps" and self.path and isinstance(self.path[0], str):
            return self.path[0]
        return None


def _parse_expression(expression: str) -> Reference:
    text = expression.strip()
    if not text:
        raise TemplateError("empty template {{ }}")
    root_match = _ROOT.match(text)
    if root_match is None:
        raise TemplateError(f"template {{{{ {text} }}}} must start with a name such as input or steps")
    path: list[PathItem] = []
    pos = root_match.end()
    while pos < len(text):
        segment = _SEGMENT.match(text, pos)
        if segment is None:
            raise TemplateError(
                f"template {{{{ {text} }}}} is not a dotted path (unexpected {text[pos:]!r}); "
                "only paths like input.a.b[0] are allowed"
            )
        if segment.group("name") is not None:
            path.append(segment.group("name"))
        elif segment.group("index") is not None:
            path.append(int(segment.group("index")))
        else:
            # A quoted key (for keys with spaces or dots): a backslash escapes the next character.
            path.append(re.sub(r"\\(.)", r"\1", segment.group("quoted")[1:-1]))
        pos = segment.end()
    return Reference(root=root_match.group(), path=tuple(path), source=text)


@lru_cache(maxsize=4096)
def parse(text: str) -> tuple[str | Reference, ...]:
    """Split a string into literal parts and references. Raises TemplateError on an
    unclosed `{{` or an expression that is not a plain dotted path."""
    parts: list[str | Reference] = []
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            if pos < len(text):
                parts.append(text[pos:])
            break
        end = text.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            raise TemplateError(f"unclosed template: {{{{ without }}}} in {text[start : start + 40]!r}")
        if start > pos:
            parts.append(text[pos:start])
        parts.append(_parse_expression(text[start + len(_OPEN) : end]))
        pos = end + len(_CLOSE)
    return tuple(parts)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and _OPEN in value


def iter_strings(value: Any, location: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value with its location (`a.b[0]`); dict keys are not
    rendered, so they are not yielded."""
    if isinstance(value, str):
        yield location, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_strings(item, f"{location}.{key}" if location else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_strings(item, f"{location}[{index}]")


def check_reference(ref: Reference) -> str | None:
    """Static shape of a reference (what validation can know without running): the
    reason it is malformed, or None."""
    if ref.root not in ROOTS:
        return f"template {{{{ {ref.source} }}}} starts with unknown name {ref.root!r}; use one of {', '.join(ROOTS)}"
    if ref.root == "steps":
        if len(ref.path) < 2 or not isinstance(ref.path[0], str) or ref.path[1] != "output":
            return f"template {{{{ {ref.source} }}}} must look like steps.<step id>.output[.path]"
    if ref.root == "secrets" and (len(ref.path) != 1 or not isinstance(ref.path[0], str)):
        return f"template {{{{ {ref.source} }}}} must look like secrets.NAME"
    if ref.root == "run" and (len(ref.path) != 1 or ref.path[0] not in RUN_FIELDS):
        return f"template {{{{ {ref.source} }}}} must be one of {', '.join('run.' + f for f in RUN_FIELDS)}"
    return None


def build_context(
    *, input: Any, steps: Mapping[str, Any], secrets: Mapping[str, str], run: Mapping[str, Any]
) -> dict[str, Any]:
    """The render context. `steps` maps step id → that step's output (only steps that ran)."""
    return {
        "input": input,
        "steps": {step_id: {"output": output} for step_id, output in steps.items()},
        "secrets": secrets,
        "run": run,
    }


def _describe(root: str, path: tuple[PathItem, ...]) -> str:
    text = root
    for item in path:
        text += f"[{item}]" if isinstance(item, int) else f".{item}"
    return text


def resolve(ref: Reference, context: Mapping[str, Any]) -> Any:
    problem = check_reference(ref)
    if problem:
        raise TemplateError(problem)
    if ref.root == "secrets":
        secrets = context.get("secrets") or {}
        name = ref.path[0]
        if name not in secrets:
            # Name only: the value of a secret never appears in a message.
            raise TemplateError(f"template {{{{ {ref.source} }}}}: secret {name!r} is not defined")
        return secrets[name]
    if ref.root == "steps" and ref.path[0] not in (context.get("steps") or {}):
        raise TemplateError(
            f"template {{{{ {ref.source} }}}}: step {ref.path[0]!r} has not run in this run, so it has no output"
        )
    current: Any = context.get(ref.root)
    for depth, item in enumerate(ref.path):
        where = _describe(ref.root, ref.path[:depth])
        if isinstance(current, Mapping):
            key = str(item)
            if key not in current:
                raise TemplateError(f"template {{{{ {ref.source} }}}}: {where} has no key {key!r}")
            current = current[key]
        elif isinstance(current, list):
            index = item if isinstance(item, int) else int(item) if str(item).isdigit() else None
            if index is None:
                raise TemplateError(f"template {{{{ {ref.source} }}}}: {where} is a list, {item!r} is not an index")
            if index >= len(current):
                raise TemplateError(
                    f"template {{{{ {ref.source} }}}}: {where} has {len(current)} items, no index {index}"
                )
            current = current[index]
        else:
            raise TemplateError(
                f"template {{{{ {ref.source} }}}}: {where} is {type(current).__name__}, it has no {item!r}"
            )
    return current


def _stringify(value: Any, budget: Budget | None = None) -> str:
    if isinstance(value, str):
        return value
    if budget is not None:
        # Measured first: serialising a value built of shared references is the very
        # exponential work the budget is there to refuse.
        budget.size_of(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def render_string(text: str, context: Mapping[str, Any], budget: Budget | None = None) -> Any:
    if _OPEN not in text:
        if budget is not None:
            budget.charge_value(text)
        return text
    parts = parse(text)
    if len(parts) == 1 and isinstance(parts[0], Reference):
        value = resolve(parts[0], context)
        if budget is not None:
            budget.charge_value(value)
        return value
    pieces: list[str] = []
    for part in parts:
        piece = part if isinstance(part, str) else _stringify(resolve(part, context), budget)
        if budget is not None and len(piece) > budget.remaining:
            # A character takes at least one byte: this piece alone passes the budget.
            raise budget.exceeded(budget.used + len(piece))
        pieces.append(piece)
    rendered = "".join(pieces)
    if budget is not None:
        budget.charge_value(rendered)
    return rendered


def render(value: Any, context: Mapping[str, Any], budget: Budget | None = None) -> Any:
    """Render every string in a JSON value (recursively through dicts and lists).

    With a `budget`, the size of the result as JSON is counted while it is built, and
    rendering stops with OutputTooLarge as soon as it passes the budget (workflows/limits.py)."""
    if isinstance(value, str):
        return render_string(value, context, budget)
    if isinstance(value, Mapping):
        if budget is not None:
            budget.charge(2 + max(0, len(value) - 1) + sum(budget.size_of(str(key)) + 1 for key in value))
        return {key: render(item, context, budget) for key, item in value.items()}
    if isinstance(value, list):
        if budget is not None:
            budget.charge(2 + max(0, len(value) - 1))
        return [render(item, context, budget) for item in value]
    if budget is not None:
        budget.charge_value(value)
    return value
