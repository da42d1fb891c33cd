"""The workflow engine: walk a definition's steps and say how the run ended (DESIGN.md §4, §5).

It knows nothing of the database (it also runs in an isolated child process that has
none): the caller hands it a RunContext and a StepRecorder, and gets back the outputs or
a RunFailed carrying the classification. Where an exception came from decides its
bucket: anything raised by an action's code is classified as the step's
(ORIGIN_STEP: the user's endpoint failing is external, a bug in their logic is user),
anything raised by the engine's own bookkeeping is the platform's (ORIGIN_PLATFORM).

Secrets: templates see them, nothing that leaves the engine does. Every output handed to
the recorder or returned, every step error message and every RunFailed message has each
secret value replaced by "***".
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

from failures.classifier import ORIGIN_PLATFORM, ORIGIN_STEP, Classification, classify
from failures.errors import (
    EngineFault,
    InvalidDefinition,
    OutputNotStorable,
    OutputTooLarge,
    RunDeadlineExceeded,
    StepConfigError,
)
from workflows import payloads, retries
from workflows.actions.registry import END, Action, StepContext, UnknownAction, get_action
from workflows.definitions import validate_definition
from workflows.limits import RUN_SETTING, STEP_SETTING, Budget, Meter, OverBudget, run_output_limit, step_output_limit
from workflows.templates import build_context, render

logger = logging.getLogger(__name__)

MASK = "***"
# The characters the HTTP action leaves unescaped in a URL path, so a secret placed in a
# path is recognised in the form it is sent and echoed back in.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
# A step's output nests what it templates (one level per step that wraps the previous
# one), so it is allowed deeper than inputs (CONVEYOR_JSON_MAX_DEPTH), well short of the
# recursion limit of the walks that follow (scrubbing, storing, rendering the detail).
OUTPUT_MAX_DEPTH = 256
STEP_SUCCESS = "success"
STEP_ERROR = "error"
STEP_SKIPPED = "skipped"


@dataclass
class RunContext:
    execution_id: str
    workflow_id: int
    organization_id: int
    input: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    deadline: float | None = None  # a time.monotonic() value
    # A resume (executions/resume.py): the outputs of the steps the original run
    # completed, reused instead of run again, and the run whose Idempotency-Keys the
    # steps send.
    reused_outputs: dict[str, Any] = field(default_factory=dict)
    idempotency_base: str | None = None


class StepRecorder(Protocol):
    def start_step(self, step_id: str, action: str, position: int) -> bool:
        """Record that a step starts. False: the claim no longer owns the run."""
        ...

    def finish_step(
        self,
        step_id: str,
        *,
        status: str,
        output: Any,
        error_type: str = "",
        error_message: str = "",
        attempts: list | None = None,
        reused: bool = False,
    ) -> None:
        """`attempts`: a step with a retry policy, one record per attempt; `reused`: a
        resume reused the original run's output. The engine passes them only when there
        is something to say."""
        ...


class RunFailed(Exception):
    """The run ended in a failure; `classification` says whose (message already scrubbed)."""

    def __init__(self, classification: Classification, step_id: str | None = None):
        self.classification = classification
        self.step_id = step_id
        prefix = f"step {step_id!r}: " if step_id else ""
        super().__init__(f"{prefix}{classification.message}")


class ClaimLost(Exception):
    """The recorder refused a step: another claim (or the reaper) owns the run now. The
    engine stops at once and writes nothing more."""


# An encoded form shorter than this is not masked inside longer text: a few base64 or
# hex characters match by chance. (The literal value is always masked.)
MIN_ENCODED_FORM = 8


def _base64_cores(raw: bytes) -> set[str]:
    """What every base64 encoding (standard and URL-safe) of a text that contains `raw`
    at any offset must contain: for each of the three alignments, the characters
    determined by `raw`'s bytes alone (an HTTP Basic credential encodes "user:secret")."""
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode().rstrip("=")
        skip = (0, 2, 3)[offset]  # characters that mix in bytes before the secret
        whole, tail = divmod(offset + len(raw), 3)
        core = encoded[skip : 4 * whole + tail]  # tail: characters made of its last bytes alone
        if len(core) >= MIN_ENCODED_FORM:
            cores.update({core, core.replace("+", "-").replace("/", "_")})
    return cores


def encoded_forms(value: str) -> set[str]:
    """The forms a secret takes in text a step may produce: itself, URL- and JSON-escaped,
    hex (either case) and base64 at any offset (standard or URL-safe)."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote_plus(value), quote(value, safe=_PATH_SAFE), json.dumps(value)[1:-1]}
    if len(raw) * 2 >= MIN_ENCODED_FORM:
        forms.update({raw.hex(), raw.hex().upper()})
    forms.update(_base64_cores(raw))
    return {form for form in forms if form}


class Scrubber:
    """Replaces secret values, escaped or encoded (see encoded_forms), with "***"."""

    def __init__(self, secrets: Mapping[str, Any]):
        forms: set[str] = set()
        for value in secrets.values():
            if not isinstance(value, str) or not value:
                continue
            forms.update(encoded_forms(value))
        # Longest first, so a secret that contains another is masked whole.
        self._forms = sorted((f for f in forms if f), key=len, reverse=True)

    def text(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def value(self, value: Any) -> Any:
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            # A numeric secret (a PIN) echoed back as a JSON number.
            return MASK if self.text(str(value)) != str(value) else value
        return value

    def classification(self, c: Classification) -> Classification:
        return replace(c, message=self.text(c.message))


class _StepError(Exception):
    """Internal: an exception and the origin that decides its classification."""

    def __init__(self, exc: BaseException, origin: str):
        super().__init__(str(exc))
        self.exc = exc
        self.origin = origin


def run_definition(definition: dict[str, Any], context: RunContext, recorder: StepRecorder) -> dict[str, Any]:
    """Run every step of `definition`; return {"steps": {id: output}, "result": last output}.

    Each step's output, and every output together, must stay within the output limits
    (workflows/limits.py): the step that would pass one fails as a user error naming it.
    Raises RunFailed (the failure's classification, scrubbed) or ClaimLost."""
    scrub = Scrubber(context.secrets)
    run_limit = run_output_limit()
    run_total = 0  # bytes of every successful step's output so far, as compact JSON
    steps, default_retry = _load(definition, scrub)
    positions = {step["id"]: i for i, step in enumerate(steps)}
    raw_outputs: dict[str, Any] = {}  # unscrubbed: later templates may pass a secret on
    outputs: dict[str, Any] = {}
    result: Any = None
    run_fields = {
        "id": context.execution_id,
        "workflow_id": context.workflow_id,
        "organization_id": context.organization_id,
    }

    i = 0
    while i < len(steps):
        step = steps[i]
        step_id = step["id"]
        if context.deadline is not None and time.monotonic() >= context.deadline:
            # Between steps: no step is running, so none is marked failed.
            fault = RunDeadlineExceeded(f"the run's deadline passed before step {step_id!r} could start")
            raise RunFailed(scrub.classification(classify(fault, ORIGIN_PLATFORM)))
        _start(recorder, step_id, step["action"], i, scrub)
        extra: dict[str, Any] = {}
        if step_id in context.reused_outputs:
            # A resume: the original run completed this step; its recorded output stands.
            output, target = _reuse_step(step, context.reused_outputs[step_id])
            size = _reused_size(step_id, output, run_limit)
            extra["reused"] = True
        else:
            output, target, size, attempts = _attempt_step(
                step, default_retry, context, recorder, raw_outputs, run_fields, scrub
            )
            if attempts is not None:
                extra["attempts"] = attempts
        if run_total + size > run_limit:
            too_much = OutputTooLarge(
                f"step {step_id!r}: its output ({size} bytes as JSON) would bring the run's outputs to "
                f"{run_total + size} bytes, more than the limit of {run_limit} set by {RUN_SETTING}",
                limit=run_limit,
                setting=RUN_SETTING,
                step_id=step_id,
            )
            classification = scrub.classification(classify(too_much, ORIGIN_STEP))
            _record_failure(recorder, step_id, classification, extra.get("attempts"))
            raise RunFailed(classification, step_id) from None
        run_total += size
        raw_outputs[step_id] = output
        clean = scrub.value(output)
        try:
            recorder.finish_step(step_id, status=STEP_SUCCESS, output=clean, **extra)
        except Exception as exc:
            raise RunFailed(scrub.classification(classify(exc, ORIGIN_PLATFORM)), step_id) from None
        outputs[step_id] = clean
        result = clean

        if target is None:
            target = step.get("next")
        if target == END:
            following = len(steps)
        elif target is None:
            following = i + 1
        elif target in positions and positions[target] > i:
            following = positions[target]
        else:
            # Validation refuses such a jump; reaching here means the definition changed
            # under the engine.
            jump = EngineFault(f"step {step_id!r} jumps to {target!r}, which is not a later step")
            raise RunFailed(scrub.classification(classify(jump, ORIGIN_PLATFORM)), step_id)
        for skipped in range(i + 1, following):
            # The steps a branch jumped over are recorded too, so a run's detail shows
            # every step of the workflow as run or skipped.
            _start(recorder, steps[skipped]["id"], steps[skipped]["action"], skipped, scrub)
            try:
                recorder.finish_step(steps[skipped]["id"], status=STEP_SKIPPED, output=None)
            except Exception as exc:
                raise RunFailed(scrub.classification(classify(exc, ORIGIN_PLATFORM)), steps[skipped]["id"]) from None
        i = following

    return {"steps": outputs, "result": result}


def _attempt_step(
    step: dict[str, Any],
    default_retry: dict[str, Any] | None,
    context: RunContext,
    recorder: StepRecorder,
    raw_outputs: dict[str, Any],
    run_fields: dict[str, Any],
    scrub: Scrubber,
) -> tuple[Any, str | None, int, list[dict[str, Any]] | None]:
    """Run a step under its retry policy: (output, jump target, the output's size as
    compact JSON, attempt records or None for a step with one attempt). Raises RunFailed
    once the step stops trying."""
    policy = retries.policy_for(step, default_retry)
    outcome = retries.run_attempts(
        policy,
        lambda number: _run_step(step, context, raw_outputs, run_fields),
        lambda failure: scrub.classification(classify(failure.exc, failure.origin)),  # type: ignore[attr-defined]
        failure_types=(_StepError,),
        step_id=step["id"],
        deadline=context.deadline,
    )
    attempts = outcome.records if policy.retries else None
    if outcome.failed:
        assert outcome.last is not None and outcome.final is not None
        _record_failure(recorder, step["id"], outcome.last, attempts)
        raise RunFailed(outcome.final, step["id"])
    assert outcome.value is not None
    output, target, size = outcome.value
    return output, target, size, attempts


def _reused_size(step_id: str, output: Any, run_limit: int) -> int:
    """A reused output counts against the run's limit as when it ran; one that no longer
    fits (the limit was lowered since) fails the resume as the workflow's error."""
    try:
        return Meter().measure(output, run_limit)
    except OverBudget as over:
        return over.at_least


def _reuse_step(step: dict[str, Any], output: Any) -> tuple[Any, str | None]:
    """A reused step's output and where the run goes next, as when it ran: a condition's
    branch follows from its recorded output."""
    try:
        return output, get_action(step["action"]).next_target(step["config"], output)
    except Exception as exc:
        fault = EngineFault(f"the recorded output of step {step['id']!r} cannot be reused: {exc}")
        raise RunFailed(classify(fault, ORIGIN_PLATFORM), step["id"]) from None


def _load(definition: Any, scrub: Scrubber) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    if not isinstance(definition, dict) or not isinstance(definition.get("steps"), list):
        # A saved workflow always passed validation: this shape is corrupted state.
        fault = EngineFault("the workflow definition is not an object with a list of steps")
        raise RunFailed(classify(fault, ORIGIN_PLATFORM))
    for step in definition["steps"]:
        action = step.get("action") if isinstance(step, dict) else None
        try:
            get_action(action)  # type: ignore[arg-type]
        except UnknownAction:
            # It was known when the workflow was saved: the platform lost it (a deploy
            # without the action), not the workflow's fault.
            fault = EngineFault(f"action {action!r} is not available on this worker")
            raise RunFailed(scrub.classification(classify(fault, ORIGIN_PLATFORM))) from None
    try:
        valid = validate_definition(definition)
        return valid["steps"], valid.get("retry")
    except InvalidDefinition as exc:
        # Valid when saved, invalid now (an allow-list or cap changed): the workflow must
        # be edited, so it is the workflow's error, with the field-level reasons.
        raise RunFailed(scrub.classification(classify(exc, ORIGIN_PLATFORM))) from None


def _start(recorder: StepRecorder, step_id: str, action: str, position: int, scrub: Scrubber) -> None:
    try:
        owned = recorder.start_step(step_id, action, position)
    except Exception as exc:
        raise RunFailed(scrub.classification(classify(exc, ORIGIN_PLATFORM)), step_id) from None
    if not owned:
        raise ClaimLost(f"the claim no longer owns the run; stopped before step {step_id!r}")


def _run_step(
    step: dict[str, Any], context: RunContext, raw_outputs: dict[str, Any], run_fields: dict[str, Any]
) -> tuple[Any, str | None, int]:
    """Render, re-check and run one step. Returns (output, jump target or None, the
    output's size as compact JSON)."""
    try:
        action: Action = get_action(step["action"])
        template_context = build_context(
            input=context.input, steps=raw_outputs, secrets=context.secrets, run=run_fields
        )
    except Exception as exc:
        raise _StepError(EngineFault(f"could not prepare step {step['id']!r}: {exc}"), ORIGIN_PLATFORM) from None
    try:
        # Rendering is the workflow's: a missing path is a TemplateError (user), a config
        # that grows past the step limit an OutputTooLarge (user), raised while it grows.
        meter = Meter()
        config = render(step["config"], template_context, Budget(step_output_limit(), step_id=step["id"], meter=meter))
        problems = action.validate_config(config)
        if problems:
            raise StepConfigError("; ".join(f"config.{k}: {v}" for k, v in problems.items()))
        step_ctx = StepContext(
            execution_id=context.execution_id,
            step_id=step["id"],
            workflow_id=context.workflow_id,
            organization_id=context.organization_id,
            deadline=context.deadline,
            idempotency_base=context.idempotency_base,
        )
        output = action.run(config, step_ctx)
    except Exception as exc:
        raise _StepError(exc, ORIGIN_STEP) from None
    limit = step_output_limit()
    try:
        # Counted without serialising (see workflows/limits.py); also refuses what JSON
        # cannot hold, as json.dumps would. Within the limit, the walk below is bounded.
        size = meter.measure(output, limit)
        payloads.check(output, "output", depth_limit=OUTPUT_MAX_DEPTH)
        target = action.next_target(step["config"], output)
    except payloads.UnsafeJSON as unsafe:
        unstorable = OutputNotStorable(f"step {step['id']!r}: its output cannot be stored: {unsafe}")
        raise _StepError(unstorable, ORIGIN_STEP) from None
    except RecursionError:
        deep = OutputNotStorable(f"step {step['id']!r}: its output is nested too deep to be stored")
        raise _StepError(deep, ORIGIN_STEP) from None
    except OverBudget as over:
        too_large = OutputTooLarge(
            f"step {step['id']!r}: its output would be more than {limit} bytes as JSON "
            f"(at least {over.at_least}), the limit set by {STEP_SETTING}",
            limit=limit,
            setting=STEP_SETTING,
            step_id=step["id"],
        )
        raise _StepError(too_large, ORIGIN_STEP) from None
    except Exception as exc:
        fault = EngineFault(f"action {step['action']!r} returned an unusable output: {exc}")
        raise _StepError(fault, ORIGIN_PLATFORM) from None
    return output, target, size


def _record_failure(
    recorder: StepRecorder, step_id: str, classification: Classification, attempts: list[dict[str, Any]] | None = None
) -> None:
    extra: dict[str, Any] = {"attempts": attempts} if attempts is not None else {}
    try:
        recorder.finish_step(
            step_id,
            status=STEP_ERROR,
            output=None,
            error_type=classification.error_type,
            error_message=classification.message,
            **extra,
        )
    except Exception as exc:
        # The step's own failure is the story; the recorder failing too is logged.
        logger.warning("could not record the failure of step %s: %s", step_id, type(exc).__name__)
