"""What JSON the platform accepts at all: it must be storable (PostgreSQL's jsonb and text
refuse NUL characters and lone surrogates), finite (jsonb refuses NaN and Infinity) and no
deeper than CONVEYOR_JSON_MAX_DEPTH (a deeply nested document exhausts the parser's and
the engine's recursion). Every entry reads JSON through here — the API's parser, the
webhook intake, definition and trigger validation — so what is refused is refused
everywhere, with an error naming where (`steps[1].config.url`, `input.order`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from workflows.runtime_settings import settings


class UnsafeJSON(ValueError):
    """The document cannot be stored or run; `errors` maps a path to the problem."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{path or 'body'} {problem}" for path, problem in errors.items()))


def max_depth() -> int:
    return settings.JSON_MAX_DEPTH


def text_problem(text: str) -> str:
    """Why a string cannot be stored ("" when it can)."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if any("\ud800" <= char <= "\udfff" for char in text):
        return "contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return ""


def printable(text: str) -> str:
    """`text` with what cannot be stored or sent written as escapes, so an error can name
    a key that is itself the problem (the response must still encode as UTF-8)."""
    if not text_problem(text):
        return text
    return "".join(f"\\u{ord(char):04x}" if char == "\x00" or "\ud800" <= char <= "\udfff" else char for char in text)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = printable(key)
    return f"{path}.{key}" if path else key


def _problems(value: Any, path: str, depth: int, limit: int) -> Iterator[tuple[str, str]]:
    if depth > limit:
        yield path, f"is nested deeper than {limit} levels"
        return
    if isinstance(value, str):
        if problem := text_problem(value):
            yield path, problem
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path, "must be a finite number (NaN and Infinity cannot be stored)"
    elif isinstance(value, dict):
        for key, item in value.items():
            where = _join(path, str(key))
            if isinstance(key, str) and (problem := text_problem(key)):
                yield where, f"has a key that {problem}"
            yield from _problems(item, where, depth + 1, limit)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _problems(item, _join(path, index), depth + 1, limit)


def check(value: Any, path: str = "", *, depth_limit: int | None = None) -> None:
    """Raise UnsafeJSON with every problem of `value` (an already parsed document).
    `depth_limit` replaces CONVEYOR_JSON_MAX_DEPTH (a step's output nests the outputs it
    templates, so it may legitimately be deeper than any input)."""
    errors: dict[str, str] = {}
    limit = max_depth() if depth_limit is None else depth_limit
    for where, problem in _problems(value, path, 1, limit):
        errors.setdefault(where, problem)
        if len(errors) >= 20:  # enough to fix; a hostile document may have millions
            break
    if errors:
        raise UnsafeJSON(errors)


def _depth_of(text: str, limit: int) -> int:
    """How deep the document nests, counted on the raw text (outside strings) so a
    hostile one is refused before the recursive parser ever sees it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def loads(raw: bytes | str) -> Any:
    """Parse a JSON document the platform may store; raise UnsafeJSON otherwise (a
    malformed document included, with the parser's own message)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise UnsafeJSON({"": "is not UTF-8"}) from None
    limit = max_depth()
    if _depth_of(text, limit) > limit:
        raise UnsafeJSON({"": f"is nested deeper than {limit} levels"})
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnsafeJSON({"": f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"}) from None
    except RecursionError:  # the raw count above makes this unreachable; kept as a guard
        raise UnsafeJSON({"": f"is nested deeper than {limit} levels"}) from None
    check(value)
    return value
