"""The one classifier: exception + where it came from → (error_type, category, code).

An ordered, data-driven rule list; the first rule that matches wins and its name is
recorded on the run, so operators can see how often runs fall through to the
unclassified C-0001. Whose network failed decides the bucket: an exception raised by a
step's own action code (origin "step") that is a network failure belongs to the
endpoint the user configured (external); the same failure in platform code (origin
"platform") is ours (N-0002).
"""

from __future__ import annotations

import importlib
import re
import socket
from dataclasses import dataclass
from functools import cache

from failures.catalogue import CATALOGUE, CATEGORY_FOR_ERROR_TYPE, UNCLASSIFIED_CODE, Code
from failures.errors import ConveyorError
from failures.statuses import ErrorType

ORIGIN_STEP = "step"
ORIGIN_PLATFORM = "platform"
ORIGINS = (ORIGIN_STEP, ORIGIN_PLATFORM)


@dataclass(frozen=True)
class Classification:
    error_type: str
    category: str
    code: str  # "" for user and external errors
    rule: str
    message: str  # internal: may name hosts or SQL; never shown to a customer
    # E-0002 (a step used up its retries): the last attempt's own code, kept beside it.
    cause_code: str = ""


@dataclass(frozen=True)
class Rule:
    name: str
    error_type: str
    code: str = ""
    # Exception classes, or dotted names resolved lazily so an optional library being
    # absent never breaks classification.
    exception_types: tuple[type[BaseException] | str, ...] = ()
    message_pattern: str = ""
    origins: tuple[str, ...] = ORIGINS

    def matches(self, exc: BaseException, origin: str) -> bool:
        if origin not in self.origins:
            return False
        if self.exception_types and not isinstance(exc, _resolve(self.exception_types)):
            return False
        if self.message_pattern and not re.search(self.message_pattern, str(exc), re.IGNORECASE):
            return False
        return True


@cache
def _resolve(names: tuple[type[BaseException] | str, ...]) -> tuple[type[BaseException], ...]:
    resolved: list[type[BaseException]] = []
    for name in names:
        if isinstance(name, str):
            module_name, _, attr = name.rpartition(".")
            try:
                resolved.append(getattr(importlib.import_module(module_name), attr))
            except (ImportError, AttributeError):
                continue
        else:
            resolved.append(name)
    return tuple(resolved)


_DB_TYPES = ("django.db.utils.DatabaseError", "django.db.utils.InterfaceError", "psycopg.Error", "sqlite3.Error")
_DB_MESSAGES = (
    r"server closed the connection unexpectedly|terminating connection due to administrator command"
    r"|connection to server .* failed|could not connect to server|database is locked|connection already closed"
)
_NETWORK_TYPES = (
    socket.gaierror,
    ConnectionError,
    TimeoutError,
    "botocore.exceptions.EndpointConnectionError",
    "botocore.exceptions.ConnectTimeoutError",
    "requests.exceptions.ConnectionError",
    "requests.exceptions.Timeout",
    "urllib3.exceptions.HTTPError",
)

# What Celery itself raises around a run's task (billiard's classes, re-exported by
# celery.exceptions): a pool process that died under its run (a signal, the kernel's OOM
# killer) and Celery's time limits. First in the list, so a soft time limit raised inside
# a step is never taken for the step's own exception. A worker lost is P-0003; its failure
# hook writes P-0001 instead when the CAS proves no step had started (pipeline.failure_hooks).
_WORKER_LOST_TYPES = ("billiard.exceptions.WorkerLostError",)
_TIME_LIMIT_TYPES = ("billiard.exceptions.SoftTimeLimitExceeded", "billiard.exceptions.TimeLimitExceeded")

# Typed ConveyorErrors are handled before this list (they carry their own answer).
RULES: tuple[Rule, ...] = (
    Rule("worker-lost", ErrorType.SYSTEM, Code.P0003, exception_types=_WORKER_LOST_TYPES),
    Rule("celery-time-limit", ErrorType.SYSTEM, Code.E0001, exception_types=_TIME_LIMIT_TYPES),
    Rule("out-of-memory", ErrorType.SYSTEM, Code.P0003, exception_types=(MemoryError,)),
    Rule("database-error", ErrorType.SYSTEM, Code.C0002, exception_types=_DB_TYPES),
    Rule("database-message", ErrorType.SYSTEM, Code.C0002, message_pattern=_DB_MESSAGES),
    Rule("secret-store", ErrorType.SYSTEM, Code.C0004, exception_types=("cryptography.fernet.InvalidToken",)),
    Rule(
        "configuration",
        ErrorType.SYSTEM,
        Code.C0003,
        exception_types=("django.core.exceptions.ImproperlyConfigured", ImportError),
        origins=(ORIGIN_PLATFORM,),
    ),
    Rule("platform-network", ErrorType.SYSTEM, Code.N0002, exception_types=_NETWORK_TYPES, origins=(ORIGIN_PLATFORM,)),
    Rule("step-network", ErrorType.EXTERNAL, exception_types=_NETWORK_TYPES, origins=(ORIGIN_STEP,)),
    Rule("step-exception", ErrorType.USER, exception_types=(Exception,), origins=(ORIGIN_STEP,)),
    Rule("unclassified", ErrorType.SYSTEM, UNCLASSIFIED_CODE, exception_types=(BaseException,)),
)
RULE_NAMES: tuple[str, ...] = ("typed",) + tuple(rule.name for rule in RULES)


def _internal_message(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _result(error_type: str, code: str, rule: str, message: str) -> Classification:
    if error_type == ErrorType.SYSTEM:
        category = CATALOGUE[code].category
    else:
        category = CATEGORY_FOR_ERROR_TYPE[error_type]
        code = ""
    return Classification(error_type, category, code, rule, message)


def classify(exc: BaseException, origin: str = ORIGIN_PLATFORM) -> Classification:
    if origin not in ORIGINS:
        raise ValueError(f"unknown origin {origin!r}")
    if isinstance(exc, ConveyorError):
        message = exc.message if exc.error_type != ErrorType.SYSTEM else _internal_message(exc)
        return _result(exc.error_type, exc.code or UNCLASSIFIED_CODE, "typed", message)
    for rule in RULES:
        if rule.matches(exc, origin):
            return _result(rule.error_type, rule.code, rule.name, _internal_message(exc))
    raise AssertionError("the last rule matches every exception")  # pragma: no cover


def system_fault(code: str, message: str, rule: str = "explicit") -> Classification:
    """A classification decided by the call site's position in the pipeline (reaper,
    producer, runtime supervisor), where no exception exists to classify."""
    return _result(ErrorType.SYSTEM, code, rule, message)
