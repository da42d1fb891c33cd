"""What a run may produce: the size of one step's output and of a run's outputs together
(CONVEYOR_MAX_STEP_OUTPUT_BYTES, CONVEYOR_MAX_RUN_OUTPUT_BYTES; docs/decisions/0010).

Sizes are counted as compact UTF-8 JSON (`json.dumps(v, separators=(",", ":"),
ensure_ascii=False)`), which is close to what PostgreSQL stores and what the API sends.

Counting must not cost what it guards against. A template returns the very object it
names, so "each step templates the previous output twice" builds values whose JSON is
2^n times larger than their memory: serialising one to measure it is the exponential work
itself. `measure` therefore walks the value once per distinct object (the size of a list or
dict is remembered by its id for the duration of one `Meter`) and gives up as soon as the
running total passes the budget, so an oversized value is refused after reading little
more than the budget's worth of it.
"""

from __future__ import annotations

import json
from typing import Any

from failures.errors import OutputTooLarge
from workflows.runtime_settings import settings

STEP_SETTING = "CONVEYOR_MAX_STEP_OUTPUT_BYTES"
RUN_SETTING = "CONVEYOR_MAX_RUN_OUTPUT_BYTES"

# Room a pipe message needs beside the outputs it carries: its type, ids, status and an
# error message (the database keeps 10,000 characters of one, 4 bytes each at most).
PIPE_ENVELOPE_BYTES = 64 * 1024
# json.dumps' defaults (ensure_ascii=True, ", " and ": " separators) write at most three
# bytes for every byte of the compact UTF-8 form: a 2-byte character becomes "\\u00e9"
# (6), a 4-byte one a surrogate pair (12), a separator gains a space.
PIPE_ENCODING_EXPANSION = 3

# Strings shorter than this are measured again rather than remembered (cheaper).
_MEMO_MIN_STRING = 256


def step_output_limit() -> int:
    return int(settings.MAX_STEP_OUTPUT_BYTES)


def run_output_limit() -> int:
    return int(settings.MAX_RUN_OUTPUT_BYTES)


def pipe_message_limit() -> int:
    """The most bytes one line of the isolated runtime's child → supervisor protocol can
    hold when the engine kept its limits: the final `result` message carries every step's
    output (at most the run limit) plus the last one again as `result` (at most the step
    limit), written by json.dumps with its defaults (see PIPE_ENCODING_EXPANSION). A longer
    line means the child did not keep the limits: the supervisor stops reading, kills it
    and fails the run with `pipe_overflow_error`."""
    return PIPE_ENCODING_EXPANSION * (run_output_limit() + step_output_limit()) + PIPE_ENVELOPE_BYTES


def pipe_overflow_error(step_id: str | None) -> OutputTooLarge:
    """The typed error for a child whose message passed pipe_message_limit(): a user
    error (the run produced too much), naming the step the supervisor saw start last."""
    where = f"step {step_id!r}" if step_id else "the run"
    limit = pipe_message_limit()
    return OutputTooLarge(
        f"{where} sent more than {limit} bytes in one message from its runtime; "
        f"outputs are limited by {STEP_SETTING} ({step_output_limit()}) and {RUN_SETTING} ({run_output_limit()})",
        limit=limit,
        setting=RUN_SETTING,
        step_id=step_id,
    )


class OverBudget(Exception):
    """Internal: a measurement passed its budget (the size is at least `at_least`)."""

    def __init__(self, at_least: int):
        super().__init__(at_least)
        self.at_least = at_least


def _scalar_size(value: Any) -> int:
    if isinstance(value, str):
        return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if isinstance(value, int | float):
        return len(json.dumps(value))
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class Meter:
    """Measures JSON sizes, remembering containers (and long strings) by id.

    One Meter must only see values that do not change while it lives (a render, a step's
    bookkeeping): ids are remembered with their object, so an id is never reused under it.
    """

    def __init__(self) -> None:
        self._sizes: dict[int, tuple[Any, int]] = {}

    def measure(self, value: Any, budget: int) -> int:
        """The compact JSON size of `value` in bytes; OverBudget once it passes `budget`.
        TypeError for what JSON cannot hold (as json.dumps would)."""
        known = self._sizes.get(id(value))
        if known is not None and known[0] is value:
            size = known[1]
        elif isinstance(value, dict):
            size = 2 + max(0, len(value) - 1)  # {} and the commas
            for key, item in value.items():
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
                size += _scalar_size(key if isinstance(key, str) else json.dumps(key)) + 1  # the colon
                if size > budget:
                    raise OverBudget(size)
                size += self.measure(item, budget - size)
                if size > budget:
                    raise OverBudget(size)
            self._sizes[id(value)] = (value, size)
        elif isinstance(value, list | tuple):
            size = 2 + max(0, len(value) - 1)
            for item in value:
                if size > budget:
                    raise OverBudget(size)
                size += self.measure(item, budget - size)
            self._sizes[id(value)] = (value, size)
        else:
            size = _scalar_size(value)
            if isinstance(value, str) and len(value) >= _MEMO_MIN_STRING:
                self._sizes[id(value)] = (value, size)
        if size > budget:
            raise OverBudget(size)
        return size


class Budget:
    """The bytes a step's rendered config may still take; charged as the renderer builds
    it. Raises OutputTooLarge (naming the step and the setting) once it is spent."""

    def __init__(self, limit: int, *, step_id: str, setting: str = STEP_SETTING, meter: Meter | None = None):
        self.limit = limit
        self.step_id = step_id
        self.setting = setting
        self.meter = meter or Meter()
        self.used = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def exceeded(self, at_least: int, what: str = "its config as rendered") -> OutputTooLarge:
        return OutputTooLarge(
            f"step {self.step_id!r}: {what} would be more than {self.limit} bytes as JSON "
            f"(at least {at_least}), the limit set by {self.setting}",
            limit=self.limit,
            setting=self.setting,
            step_id=self.step_id,
        )

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise self.exceeded(self.used)

    def size_of(self, value: Any) -> int:
        """Measure `value` against what remains (without charging it)."""
        try:
            return self.meter.measure(value, self.remaining)
        except OverBudget as over:
            raise self.exceeded(self.used + over.at_least) from None

    def charge_value(self, value: Any) -> None:
        self.charge(self.size_of(value))
