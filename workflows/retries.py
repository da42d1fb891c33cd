"""Step retries and declared idempotency (issue 13, docs/decisions/0014-step-retries-and-resume.md).

A step may carry a retry policy, and a definition a default one for its steps:

    {"retry": {"max_attempts": 3},                       # the workflow's default
     "steps": [{"id": "pay", "action": "http_request", "config": {...},
                "retry": {"max_attempts": 5, "backoff": "exponential", "delay_s": 1,
                          "max_delay_s": 30, "jitter": true,
                          "retry_on": ["external", "system"]},
                "idempotent": true}]}

With no policy a step has one attempt. The default applies only to steps whose repetition
is safe (`step_idempotent`): a policy written on a step that is not idempotent is refused
by validation, so nothing is repeated by accident. Attempts back off (fixed, or
exponential capped at max_delay_s, with "equal" jitter) inside the run's deadline: a
back-off that would pass it is never slept, the step gives up there.

Which failures are retried: the types in `retry_on` (external and system by default, user
never unless listed), except system codes the catalogue marks not retryable (C-0003
configuration, C-0004 secret store) and the deadline itself (E-0001): repeating cannot
help them.

How a step that used its retries ends: a system cause becomes E-0002 (category and code of
the last attempt kept: `cause_code`, and the category is the cause's own, so a database
outage still counts as `database`); an external or user cause keeps its own type and the
last real message.

This module knows nothing of the database (it also runs in the isolated child).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from failures.catalogue import CATALOGUE, Code
from failures.classifier import Classification
from failures.statuses import ErrorType
from workflows.actions.registry import UnknownAction, get_action, is_number

T = TypeVar("T")

RETRY_FIELDS = ("max_attempts", "backoff", "delay_s", "max_delay_s", "jitter", "retry_on")
BACKOFFS = ("fixed", "exponential")
RETRYABLE_TYPES = (ErrorType.EXTERNAL, ErrorType.SYSTEM, ErrorType.USER)
DEFAULT_RETRY_ON = (ErrorType.EXTERNAL, ErrorType.SYSTEM)
# Bounds a definition may not exceed: a step holds its worker while it backs off.
MAX_ATTEMPTS = 10
MAX_DELAY_S = 3600.0
# Never retried whatever the policy says: the deadline passed (another attempt cannot
# start), and the catalogue's not-retryable codes (missing configuration, secret store).
NEVER_RETRIED_CODES: frozenset[str] = frozenset({Code.E0001}) | frozenset(
    code for code, entry in CATALOGUE.items() if not entry.retryable
)
RETRIES_EXHAUSTED_RULE = "step-retries"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff: str = "exponential"
    delay_s: float = 1.0
    max_delay_s: float = 60.0
    jitter: bool = True
    retry_on: tuple[str, ...] = DEFAULT_RETRY_ON

    @property
    def retries(self) -> bool:
        return self.max_attempts > 1


ONE_ATTEMPT = RetryPolicy()


# --- validation (definitions.py names the fields) -----------------------------------------
def policy_problems(raw: Any) -> dict[str, str]:
    """Field (relative to the policy: "max_attempts", "retry_on[1]"...) → problem."""
    if not isinstance(raw, dict):
        return {"": 'must be an object like {"max_attempts": 3}'}
    errors: dict[str, str] = {}
    for key in raw:
        if key not in RETRY_FIELDS:
            errors[str(key)] = f"unknown field (allowed: {', '.join(RETRY_FIELDS)})"
    attempts = raw.get("max_attempts")
    if attempts is None:
        errors["max_attempts"] = "is required"
    elif not isinstance(attempts, int) or isinstance(attempts, bool):
        errors["max_attempts"] = "must be a whole number"
    elif not 1 <= attempts <= MAX_ATTEMPTS:
        errors["max_attempts"] = f"must be between 1 and {MAX_ATTEMPTS}"
    if "backoff" in raw and raw["backoff"] not in BACKOFFS:
        errors["backoff"] = f"must be one of {', '.join(BACKOFFS)}"
    for name in ("delay_s", "max_delay_s"):
        if name in raw:
            value = raw[name]
            if not is_number(value):
                errors[name] = "must be a number of seconds"
            elif not 0 <= value <= MAX_DELAY_S:
                errors[name] = f"must be between 0 and {MAX_DELAY_S:g}"
    delay, cap = raw.get("delay_s", ONE_ATTEMPT.delay_s), raw.get("max_delay_s", ONE_ATTEMPT.max_delay_s)
    if "delay_s" not in errors and "max_delay_s" not in errors and is_number(delay) and is_number(cap) and cap < delay:
        errors["max_delay_s"] = f"must be at least delay_s ({delay:g})"
    if "jitter" in raw and not isinstance(raw["jitter"], bool):
        errors["jitter"] = "must be true or false"
    if "retry_on" in raw:
        retry_on = raw["retry_on"]
        if not isinstance(retry_on, list) or not retry_on:
            errors["retry_on"] = f"must be a non-empty list of {', '.join(RETRYABLE_TYPES)}"
        else:
            for i, item in enumerate(retry_on):
                if item not in RETRYABLE_TYPES:
                    errors[f"retry_on[{i}]"] = f"must be one of {', '.join(RETRYABLE_TYPES)}"
    return errors


def parse_policy(raw: Mapping[str, Any]) -> RetryPolicy:
    """A validated policy's dataclass (policy_problems found nothing)."""
    return RetryPolicy(
        max_attempts=int(raw["max_attempts"]),
        backoff=str(raw.get("backoff", ONE_ATTEMPT.backoff)),
        delay_s=float(raw.get("delay_s", ONE_ATTEMPT.delay_s)),
        max_delay_s=float(raw.get("max_delay_s", ONE_ATTEMPT.max_delay_s)),
        jitter=bool(raw.get("jitter", ONE_ATTEMPT.jitter)),
        retry_on=tuple(raw.get("retry_on", DEFAULT_RETRY_ON)),
    )


# --- idempotency ------------------------------------------------------------------------
def step_idempotent(step: Mapping[str, Any]) -> bool:
    """Whether repeating this step is safe: the step's own `idempotent` says so first,
    else its action (transform, condition, delay: yes; HTTP by method, POST/PATCH only
    when the receiver honours the Idempotency-Key; python callables by registration)."""
    declared = step.get("idempotent")
    if isinstance(declared, bool):
        return declared
    try:
        action = get_action(step.get("action"))  # type: ignore[arg-type]
    except UnknownAction:
        return False
    config = step.get("config")
    return action.idempotent(config if isinstance(config, dict) else {})


def policy_for(step: Mapping[str, Any], default: Mapping[str, Any] | None) -> RetryPolicy:
    """The policy a (validated) step runs under: its own, else the definition's default
    for a step that is safe to repeat, else one attempt."""
    if isinstance(step.get("retry"), dict):
        return parse_policy(step["retry"])
    if isinstance(default, dict) and step_idempotent(step):
        return parse_policy(default)
    return ONE_ATTEMPT


# --- back-off ---------------------------------------------------------------------------
def backoff_delay(policy: RetryPolicy, retry: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number `retry` (1: the second attempt)."""
    if policy.backoff == "fixed":
        delay = policy.delay_s
    else:
        delay = policy.delay_s * 2 ** max(retry - 1, 0)
    delay = min(delay, policy.max_delay_s)
    if policy.jitter and delay > 0:
        # "Equal" jitter: half fixed, half random, so retries of many runs spread out but
        # never come sooner than half the back-off.
        delay = delay / 2 + rng() * delay / 2
    return delay


class Clock:
    """Time as the retry loop sees it; tests replace CLOCK (no test sleeps for real)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)


CLOCK = Clock()


# --- the attempts loop --------------------------------------------------------------------
@dataclass
class Attempts(Generic[T]):
    """How a step's attempts went: `value` on success, else the step's own last
    classification (`last`) and the run's (`final`: E-0002 when a system cause used up
    its retries)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    value: T | None = None
    last: Classification | None = None
    final: Classification | None = None

    @property
    def failed(self) -> bool:
        return self.final is not None

    @property
    def retried(self) -> bool:
        return len(self.records) > 1


def retryable(policy: RetryPolicy, classification: Classification) -> bool:
    if classification.error_type not in policy.retry_on:
        return False
    return not (classification.error_type == ErrorType.SYSTEM and classification.code in NEVER_RETRIED_CODES)


def run_attempts(
    policy: RetryPolicy,
    attempt: Callable[[int], T],
    classify_failure: Callable[[Exception], Classification],
    *,
    failure_types: tuple[type[Exception], ...],
    step_id: str,
    deadline: float | None,
    rng: Callable[[], float] = random.random,
    clock: Clock | None = None,
) -> Attempts[T]:
    """Call `attempt(n)` until it returns, the failure is not retryable, the attempts are
    used up, or the next back-off would pass `deadline` (a monotonic value). Exceptions
    of `failure_types` are the step's failures; any other escapes."""
    clock = clock or CLOCK
    outcome: Attempts[T] = Attempts()
    number = 0
    while True:
        number += 1
        record: dict[str, Any] = {"attempt": number, "started_at": clock.now().isoformat()}
        outcome.records.append(record)
        try:
            outcome.value = attempt(number)
        except failure_types as exc:
            classification = classify_failure(exc)
            record.update(
                finished_at=clock.now().isoformat(),
                outcome="error",
                error_type=classification.error_type,
                error_category=classification.category,
                error_code=classification.code,
                error_message=classification.message[:2000],
            )
            outcome.last = classification
            if not retryable(policy, classification):
                outcome.final = _final(classification, outcome, step_id, policy, "")
                return outcome
            if number >= policy.max_attempts:
                outcome.final = _final(classification, outcome, step_id, policy, "all attempts used")
                return outcome
            delay = backoff_delay(policy, number, rng)
            if deadline is not None and clock.monotonic() + delay >= deadline:
                # Sleeping into the deadline would only fail the run then, holding the
                # worker for nothing: give up now, and say why.
                outcome.final = _final(
                    classification,
                    outcome,
                    step_id,
                    policy,
                    f"the next back-off ({delay:.1f}s) would pass the deadline",
                )
                return outcome
            record["retry_in_s"] = round(delay, 3)
            clock.sleep(delay)
            continue
        record.update(finished_at=clock.now().isoformat(), outcome="success")
        return outcome


def _final(last: Classification, outcome: Attempts[Any], step_id: str, policy: RetryPolicy, why: str) -> Classification:
    """The run's classification once the step stops trying."""
    if not policy.retries or not retryable(policy, last) or last.error_type != ErrorType.SYSTEM:
        # Not a retried cause, or an external/user one: its own type and real message.
        return last
    made = len(outcome.records)
    message = (
        f"step {step_id!r} failed {made} of {policy.max_attempts} attempts ({why}); "
        f"last attempt: {last.code} ({last.category}): {last.message}"
    )
    # The category stays the cause's own (a database outage counts as `database`); the
    # cause's code is kept beside E-0002.
    return replace(last, code=Code.E0002, rule=RETRIES_EXHAUSTED_RULE, message=message, cause_code=last.code)
