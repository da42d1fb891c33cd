"""System checks for invariants between settings, all of them in one place (they fail
`manage.py check` and the start of every process). Registered by config.apps."""

from __future__ import annotations

import importlib.util

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from failures.faults import POINTS
from workflows.chains import configured_chains


@register()
def threshold_invariants(app_configs, **kwargs):
    errors = []
    if settings.STALE_AFTER_S < 5 * settings.HEARTBEAT_INTERVAL_S:
        errors.append(
            Error(
                f"CONVEYOR_STALE_AFTER_S ({settings.STALE_AFTER_S}) must be at least 5x "
                f"CONVEYOR_HEARTBEAT_INTERVAL_S ({settings.HEARTBEAT_INTERVAL_S}), or a busy machine "
                "produces false P-0003 reaps",
                id="conveyor.E001",
            )
        )
    if settings.REQUEUE_DELAY_S * 3 > settings.START_THRESHOLD_S:
        errors.append(
            Error(
                f"CONVEYOR_REQUEUE_DELAY_S ({settings.REQUEUE_DELAY_S}) must be at most a third of "
                f"CONVEYOR_START_THRESHOLD_S ({settings.START_THRESHOLD_S}), or a requeued run is reaped "
                "as P-0005 while it waits",
                id="conveyor.E002",
            )
        )
    if settings.REQUEUE_DELAY_S > 900:
        errors.append(Error("CONVEYOR_REQUEUE_DELAY_S must be at most 900 (SQS DelaySeconds)", id="conveyor.E003"))
    if settings.HEARTBEAT_INTERVAL_S >= settings.RUN_DEADLINE_S:
        errors.append(Error("CONVEYOR_HEARTBEAT_INTERVAL_S must be below CONVEYOR_RUN_DEADLINE_S", id="conveyor.E004"))
    if settings.MAX_RUN_OUTPUT_BYTES < settings.MAX_STEP_OUTPUT_BYTES:
        errors.append(
            Error(
                f"CONVEYOR_MAX_RUN_OUTPUT_BYTES ({settings.MAX_RUN_OUTPUT_BYTES}) must be at least "
                f"CONVEYOR_MAX_STEP_OUTPUT_BYTES ({settings.MAX_STEP_OUTPUT_BYTES}): a run holds at least one step",
                id="conveyor.E005",
            )
        )
    return errors


@register()
def secret_invariants(app_configs, **kwargs):
    errors = []
    for index, key in enumerate(settings.SECRETS_ENCRYPTION_KEYS):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            errors.append(
                Error(f"CONVEYOR_SECRETS_ENCRYPTION_KEYS entry {index} is not a valid Fernet key", id="conveyor.E010")
            )
    if not settings.DEBUG and not settings.EMBEDDED:
        if not settings.SECRETS_ENCRYPTION_KEYS:
            errors.append(
                Warning(
                    "CONVEYOR_SECRETS_ENCRYPTION_KEYS is not set: secrets are encrypted with a key derived from "
                    "DJANGO_SECRET_KEY",
                    id="conveyor.W011",
                )
            )
        if settings.MESSAGE_SIGNING_KEY == settings.SECRET_KEY:
            errors.append(
                Warning(
                    "CONVEYOR_MESSAGE_SIGNING_KEY is not set: queue messages are signed with DJANGO_SECRET_KEY",
                    id="conveyor.W012",
                )
            )
    unknown = set(settings.FAULT_INJECTION) - POINTS
    if unknown:
        errors.append(Error(f"CONVEYOR_FAULT_INJECTION names unknown points {sorted(unknown)}", id="conveyor.E014"))
    if settings.FAULT_INJECTION and not settings.DEBUG:
        errors.append(Warning("CONVEYOR_FAULT_INJECTION is set: runs will fail on purpose", id="conveyor.W015"))
    for module_path in settings.PYTHON_CALLABLE_ALLOWLIST:
        if "." not in module_path:
            errors.append(
                Error(f"CONVEYOR_PYTHON_CALLABLES entry {module_path!r} is not a dotted path", id="conveyor.E013")
            )
    return errors


@register()
def trigger_settings(app_configs, **kwargs):
    errors = []
    try:
        chains = configured_chains()
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), id="scheduler.E001"))
        chains = ()
    if chains:
        if importlib.util.find_spec("web3") is None:
            errors.append(Error("CONVEYOR_CHAINS lists chains but web3 is not installed", id="scheduler.E002"))
    window, tick = settings.SCHEDULE_CATCHUP_WINDOW_S, settings.SCHEDULE_TICK_S
    if window < 2 * tick:
        errors.append(
            Error(
                f"CONVEYOR_SCHEDULE_CATCHUP_WINDOW_S ({window}) must be at least twice "
                f"CONVEYOR_SCHEDULE_TICK_S ({tick}), or a fire time found by a late tick "
                "counts as missed",
                id="scheduler.E003",
            )
        )
    if settings.SYSTEM_RETRY_LOOKBACK_S < 2 * settings.SYSTEM_RETRY_TICK_S:
        errors.append(
            Error(
                "CONVEYOR_SYSTEM_RETRY_LOOKBACK_S must be at least twice CONVEYOR_SYSTEM_RETRY_TICK_S",
                id="scheduler.E004",
            )
        )
    return errors
