"""Typed errors. Each carries its own classification, so the classifier's first rule
sorts them without guessing; anything untyped goes through the ordered rules."""

from __future__ import annotations

from typing import ClassVar

from failures.catalogue import Code
from failures.statuses import ErrorType


class ConveyorError(Exception):
    error_type: ClassVar[str]
    code: ClassVar[Code | None] = None

    def __init__(self, message: str, *, step_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.step_id = step_id


# --- the workflow's own fault ------------------------------------------------------------
class UserError(ConveyorError):
    error_type = ErrorType.USER


class TemplateError(UserError):
    """A template references something that does not exist or cannot be rendered."""


class ConditionFailed(UserError):
    """A condition step with `fail_when_false` evaluated to false."""


class StepConfigError(UserError):
    """A step's config is unusable at run time (bad URL, refused destination...)."""


class UserCodeError(UserError):
    """An allow-listed Python callable raised."""


class InvalidDefinition(UserError):
    """A workflow definition failed validation. `errors` maps "steps[i].field" to a message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class OutputTooLarge(UserError):
    """A step's output (or its config as rendered), or a run's outputs together, would pass
    a size limit (workflows/limits.py). `setting` names the limit, `limit` its bytes."""

    def __init__(self, message: str, *, limit: int, setting: str, step_id: str | None = None):
        super().__init__(message, step_id=step_id)
        self.limit = limit
        self.setting = setting


class OutputNotStorable(UserError):
    """A step's output holds what cannot be stored (a NUL character, a lone surrogate, a
    non-finite number, nesting too deep): refused with where it is, not left to fail in
    the database as the platform's error."""


# --- a service the workflow called failed -------------------------------------------------
class ExternalError(ConveyorError):
    error_type = ErrorType.EXTERNAL


class ExternalHTTPError(ExternalError):
    """The user's endpoint answered 5xx, refused the connection or timed out."""


# --- the platform failed -------------------------------------------------------------------
class SystemFault(ConveyorError):
    """The platform failed; unless a subclass says which way, C-0001 (unclassified)."""

    error_type = ErrorType.SYSTEM
    code = Code.C0001


class DatabaseFault(SystemFault):
    """Our database failed (a query, a connection): C-0002."""

    code = Code.C0002


class ConfigurationFault(SystemFault):
    """The platform lacks configuration, a secret or a module it needs to run the step
    (an allow-listed callable that does not import, a missing setting): C-0003."""

    code = Code.C0003


class SecretStoreError(SystemFault):
    """The organization's secrets could not be read or decrypted: C-0004."""

    code = Code.C0004


class RunDeadlineExceeded(SystemFault):
    """The run, or a step's wait, would pass the run's deadline: E-0001."""

    code = Code.E0001


class StepRetriesExhausted(SystemFault):
    """A step kept failing for a platform reason after all its retries: E-0002 (the
    last attempt's own code and category stay beside it)."""

    code = Code.E0002


class EngineFault(SystemFault):
    """The engine met a state it cannot run (an unknown action at run time, a jump to an
    earlier step): the definition changed under it or the engine is wrong. E-0003."""

    code = Code.E0003


class ChainRPCUnavailable(SystemFault):
    """The chain's RPC endpoint (platform configuration) failed: N-0001."""

    code = Code.N0001


class RuntimeSpawnError(SystemFault):
    """The isolated runtime's child could not be started (or did not say it was ready in
    time): P-0002. No step ran."""

    code = Code.P0002


class DispatchError(SystemFault):
    """Handing a claimed run to its runtime failed unexpectedly: P-0004."""

    code = Code.P0004


# --- control flow, never a failure ----------------------------------------------------------
class RequeueSignal(Exception):
    """The run cannot start now (concurrency limit): send a delayed copy, mark nothing.

    Deliberately not a ConveyorError: the consumer's backstop must never catch it."""

    def __init__(self, reason: str, delay_seconds: int):
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds
