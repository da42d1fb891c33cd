"""The error catalogue (DESIGN.md §3) and the customer-facing message.

Every system failure carries a code from here. User and external failures carry the
real message and no code. `did_no_work` says the run provably never started a step, the
only case in which "safe to re-run" may be said.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db import models

from failures.statuses import ErrorType


class ErrorCategory(models.TextChoices):
    """What part of the platform failed (system errors), or whose side (the others)."""

    WORKFLOW_ENGINE = "workflow_engine", "Workflow engine"
    DATABASE = "database"
    INFRASTRUCTURE = "infrastructure"
    AUTH = "auth"
    NETWORK_RPC = "network_rpc", "Network / RPC"
    # Categories of non-system failures, so every failed run carries one.
    WORKFLOW = "workflow", "Workflow (user)"
    EXTERNAL_SERVICE = "external_service", "External service"


SYSTEM_CATEGORIES: frozenset[str] = frozenset(
    {
        ErrorCategory.WORKFLOW_ENGINE,
        ErrorCategory.DATABASE,
        ErrorCategory.INFRASTRUCTURE,
        ErrorCategory.AUTH,
        ErrorCategory.NETWORK_RPC,
    }
)
CATEGORY_FOR_ERROR_TYPE: dict[str, str] = {
    ErrorType.USER: ErrorCategory.WORKFLOW,
    ErrorType.EXTERNAL: ErrorCategory.EXTERNAL_SERVICE,
}


class Code(StrEnum):
    """Every system failure's code. Call sites name a code through this enum, never as a
    string; the value is what is stored, logged and shown (C-0001...)."""

    C0001 = "C-0001"
    C0002 = "C-0002"
    C0003 = "C-0003"
    C0004 = "C-0004"
    E0001 = "E-0001"
    E0002 = "E-0002"
    E0003 = "E-0003"
    E0004 = "E-0004"
    N0001 = "N-0001"
    N0002 = "N-0002"
    P0001 = "P-0001"
    P0002 = "P-0002"
    P0003 = "P-0003"
    P0004 = "P-0004"
    P0005 = "P-0005"
    CS0001 = "CS-0001"
    BS0001 = "BS-0001"
    ES0001 = "ES-0001"
    MS0001 = "MS-0001"
    CS0002 = "CS-0002"
    BS0002 = "BS-0002"


@dataclass(frozen=True)
class CatalogueEntry:
    code: Code
    category: str
    retryable: bool
    meaning: str
    customer_message: str
    did_no_work: bool


_NOT_YOURS = "This was a failure of the Conveyor platform, not of your workflow."
# The two things a system error's run may be told about re-running it; "safe to re-run"
# only of a run that provably did no work (DESIGN.md §2). Every interface says them with
# these words.
SAFE_TO_RERUN = "No step of this run started, so it is safe to re-run."
MAY_HAVE_PARTLY_RUN = "It may have partly run: check its steps before re-running it."


def _entry(code: Code, category: str, retryable: bool, meaning: str, what: str, did_no_work: bool) -> CatalogueEntry:
    tail = SAFE_TO_RERUN if did_no_work else MAY_HAVE_PARTLY_RUN
    return CatalogueEntry(code, category, retryable, meaning, f"{what} {_NOT_YOURS} {tail}", did_no_work)


_C = ErrorCategory
CATALOGUE: dict[str, CatalogueEntry] = {
    e.code: e
    for e in [
        _entry(
            Code.C0001,
            _C.WORKFLOW_ENGINE,
            True,
            "unclassified system failure",
            "The platform hit an unexpected internal error while running this workflow.",
            False,
        ),
        _entry(
            Code.C0002,
            _C.DATABASE,
            True,
            "database unavailable or query failed",
            "The platform's database was unavailable while running this workflow.",
            False,
        ),
        _entry(
            Code.C0003,
            _C.INFRASTRUCTURE,
            False,
            "missing configuration, secret or module",
            "The platform is missing configuration it needs to run this workflow.",
            False,
        ),
        _entry(
            Code.C0004,
            _C.AUTH,
            False,
            "internal auth or secret-store failure",
            "The platform could not read its secret store while running this workflow.",
            False,
        ),
        _entry(
            Code.E0001,
            _C.WORKFLOW_ENGINE,
            True,
            "run timed out (no progress / deadline)",
            "The run did not finish within its deadline.",
            False,
        ),
        _entry(
            Code.E0002,
            _C.WORKFLOW_ENGINE,
            True,
            "a step exceeded its retries for a system reason",
            "A step kept failing for a platform reason after all its retries.",
            False,
        ),
        _entry(
            Code.E0003,
            _C.WORKFLOW_ENGINE,
            True,
            "engine fault",
            "The workflow engine hit an internal fault while running this workflow.",
            False,
        ),
        _entry(
            Code.E0004,
            _C.INFRASTRUCTURE,
            True,
            "consumer backstop: the message could not be processed",
            "The platform could not process this run's queue message.",
            False,
        ),
        _entry(
            Code.N0001,
            _C.NETWORK_RPC,
            True,
            "chain RPC endpoint unavailable",
            "The platform's blockchain RPC endpoint was unavailable.",
            False,
        ),
        _entry(
            Code.N0002,
            _C.NETWORK_RPC,
            True,
            "the platform's own network failed during a run",
            "The platform's own network failed while running this workflow.",
            False,
        ),
        _entry(
            Code.P0001,
            _C.INFRASTRUCTURE,
            True,
            "run claimed, heartbeat lost before its first step started",
            "The worker that picked up this run stopped before its first step.",
            True,
        ),
        _entry(
            Code.P0002,
            _C.INFRASTRUCTURE,
            True,
            "runtime could not be created",
            "The platform could not start a runtime for this run.",
            True,
        ),
        _entry(
            Code.P0003,
            _C.INFRASTRUCTURE,
            True,
            "runtime killed or worker lost",
            "The runtime executing this run was stopped (killed, out of memory or worker lost).",
            False,
        ),
        _entry(
            Code.P0004,
            _C.INFRASTRUCTURE,
            True,
            "dispatch failed",
            "The platform failed while handing this run to a runtime.",
            False,
        ),
        _entry(
            Code.P0005,
            _C.INFRASTRUCTURE,
            True,
            "pending run never received: queue message lost",
            "This run was queued but never picked up by a worker.",
            True,
        ),
        _entry(
            Code.CS0001,
            _C.INFRASTRUCTURE,
            True,
            "schedule producer: SendMessage failed",
            "The platform could not queue this scheduled run.",
            True,
        ),
        _entry(
            Code.BS0001,
            _C.INFRASTRUCTURE,
            True,
            "block producer: SendMessage failed",
            "The platform could not queue this block-triggered run.",
            True,
        ),
        _entry(
            Code.ES0001,
            _C.INFRASTRUCTURE,
            True,
            "event producer: SendMessage failed",
            "The platform could not queue this event-triggered run.",
            True,
        ),
        _entry(
            Code.MS0001,
            _C.INFRASTRUCTURE,
            True,
            "manual/API producer: SendMessage failed",
            "The platform could not queue this run.",
            True,
        ),
        _entry(
            Code.CS0002,
            _C.INFRASTRUCTURE,
            True,
            "schedule fire time missed: the platform could not dispatch it in time (outage)",
            "This scheduled fire time passed while the platform could not dispatch runs, so it was not run.",
            True,
        ),
        _entry(
            Code.BS0002,
            _C.INFRASTRUCTURE,
            True,
            "block missed: beyond the catch-up bound after an outage",
            "This block was confirmed while the platform could not dispatch runs, and lay beyond how far it "
            "catches up, so it was not run.",
            True,
        ),
    ]
}

# Said of a P-0003/E-0001 run the system-error retry policy did not resume because the
# step it was interrupted in is not safe to repeat (scheduler/retry_policy.py).
NOT_RESUMED = (
    "It was not resumed automatically: the step it stopped in may already have done its work and is not safe to "
    "repeat, so an operator will check it before resuming."
)
# The codes the retry policy may resume (from the interrupted step) when the workflow asks
# for it: runs that may have partly run because the platform lost them mid-way.
RESUMED_CODES: frozenset[str] = frozenset({Code.P0003, Code.E0001})

UNCLASSIFIED_CODE = Code.C0001
# The code a producer records when it cannot send its message, by trigger type.
PRODUCER_CODES: dict[str, str] = {
    "schedule": Code.CS0001,
    "block": Code.BS0001,
    "event": Code.ES0001,
    "manual": Code.MS0001,
    "rerun": Code.MS0001,
    "retry": Code.MS0001,
    "resume": Code.MS0001,
}
# Codes the reaper writes that the run's own claim may still heal (DESIGN.md §2).
HEALABLE_TO_SUCCESS: frozenset[str] = frozenset({Code.P0003, Code.E0001})
HEALABLE_TO_RUNNING: frozenset[str] = frozenset({Code.P0005})
DID_NO_WORK_CODES: frozenset[str] = frozenset(code for code, e in CATALOGUE.items() if e.did_no_work)
# A fire time or block the platform could not dispatch during an outage, recorded as its
# own run (scheduler.enqueue.record_not_dispatched): an operator may re-run it, but the
# system-error retry policy never does (replaying every missed fire time is not what a
# schedule means).
MISSED_DISPATCH_CODES: frozenset[str] = frozenset({Code.CS0002, Code.BS0002})
# What the system-error retry policy may retry: runs that provably did no work, except
# missed dispatches.
AUTO_RETRIED_CODES: frozenset[str] = DID_NO_WORK_CODES - MISSED_DISPATCH_CODES
CODE_CHOICES: list[tuple[str, str]] = [(code, f"{code} {e.meaning}") for code, e in CATALOGUE.items()]


def customer_message(
    *, status: str, error_type: str, error_code: str, error_message: str, left_for_operator: bool = False
) -> str:
    """What a customer is shown about a failed run.

    System errors: the catalogue text plus the code as a reference, never the internal
    message (it may hold a host name, SQL or a stack trace). User and external errors:
    the real message, which the engine already scrubbed of secrets.
    """
    if error_type == ErrorType.SYSTEM:
        e = CATALOGUE.get(error_code) or CATALOGUE[UNCLASSIFIED_CODE]
        tail = f" {NOT_RESUMED}" if left_for_operator else ""
        return f"{e.customer_message}{tail} (reference {e.code})"
    if error_type in (ErrorType.USER, ErrorType.EXTERNAL):
        return error_message
    return ""


def safe_to_rerun(*, error_type: str, error_code: str) -> bool:
    return error_type == ErrorType.SYSTEM and error_code in DID_NO_WORK_CODES
