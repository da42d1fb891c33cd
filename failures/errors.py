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


# --- a service the workflow called failed -------------------------------------------------
class ExternalError(ConveyorError):
    error_type = ErrorType.EXTERNAL


class ExternalHTTPError(ExternalError):
    """The user's endpoint answered 5xx, refused the connection or timed out."""


# --- the platform failed -------------------------------------------------------------------
class SystemFault(ConveyorError):
    error_type = ErrorType.SYSTEM
    code = Code.C0001


class DatabaseFault(SystemFault):
    code = Code.C0002


class ConfigurationFault(SystemFault):
    code = Code.C0003


class SecretStoreError(SystemFault):
    code = Code.C0004


class RunDeadlineExceeded(SystemFault):
    code = Code.E0001


class StepRetriesExhausted(SystemFault):
    code = Code.E0002


class EngineFault(SystemFault):
    code = Code.E0003


class ChainRPCUnavailable(SystemFault):
    code = Code.N0001


class RuntimeSpawnError(SystemFault):
    code = Code.P0002


class DispatchError(SystemFault):
    code = Code.P0004


# --- control flow, never a failure ----------------------------------------------------------
class RequeueSignal(Exception):
    """The run cannot start now (concurrency limit): send a delayed copy, mark nothing.

    Deliberately not a ConveyorError: the consumer's backstop must never catch it."""

    def __init__(self, reason: str, delay_seconds: int):
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds
