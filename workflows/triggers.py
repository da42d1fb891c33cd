"""Validation of a workflow's trigger, at save time, with clear errors.

`validate_trigger(trigger_type, trigger_config)` returns the normalized config to store,
or raises InvalidTrigger whose `errors` map "trigger_config.<key>" to a message. Workflow
.clean()/.save() call it; the producers call it again when they read a workflow, so a
row written around the model (a queryset update) can never crash a tick.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from failures.statuses import TriggerType
from workflows import payloads
from workflows.chains import configured_chains
from workflows.cron import ALIASES, CronSchedule

# Types a workflow can be triggered by; re-runs and system retries are not triggers.
WORKFLOW_TRIGGERS = (TriggerType.SCHEDULE, TriggerType.BLOCK, TriggerType.EVENT, TriggerType.MANUAL)
MAX_EVERY_N_BLOCKS = 1_000_000
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


class InvalidTrigger(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def validate_trigger(trigger_type: str, trigger_config: object) -> dict:
    if trigger_type not in WORKFLOW_TRIGGERS:
        allowed = ", ".join(WORKFLOW_TRIGGERS)
        raise InvalidTrigger({"trigger_type": f"{trigger_type!r} is not a workflow trigger (allowed: {allowed})"})
    if trigger_config is None:
        trigger_config = {}
    if not isinstance(trigger_config, dict):
        raise InvalidTrigger({"trigger_config": "must be a JSON object"})
    try:
        payloads.check(trigger_config, "trigger_config")
    except payloads.UnsafeJSON as unsafe:
        raise InvalidTrigger(unsafe.errors) from None
    validators: dict[str, Callable[[str, dict], dict]] = {
        TriggerType.SCHEDULE: _schedule,
        TriggerType.BLOCK: _block,
        TriggerType.EVENT: _no_config,
        TriggerType.MANUAL: _no_config,
    }
    return validators[trigger_type](trigger_type, trigger_config)


def _unknown_keys(config: dict, allowed: set[str], errors: dict[str, str]) -> None:
    for key in sorted(set(config) - allowed):
        known = ", ".join(sorted(allowed)) or "none"
        errors[f"trigger_config.{key}"] = f"unknown key (allowed: {known})"


def _no_config(trigger_type: str, config: dict) -> dict:
    errors: dict[str, str] = {}
    _unknown_keys(config, set(), errors)
    if errors:
        raise InvalidTrigger(errors)
    return {}


def parse_zone(name: object) -> ZoneInfo:
    """A zoneinfo time zone from its IANA name ("Europe/Paris"); ValueError otherwise."""
    if not isinstance(name, str) or not name:
        raise ValueError("must be an IANA time zone name such as 'Europe/Paris' or 'UTC'")
    # zoneinfo would also read a file path: only plain IANA names are accepted.
    if not _ZONE_NAME.match(name) or ".." in name:
        raise ValueError(f"{name!r} is not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Paris')") from None


def parse_cron(expression: object) -> str:
    """A normalized five-field cron expression (or an @alias); ValueError otherwise."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("must be a cron expression such as '*/5 * * * *'")
    normalized = " ".join(expression.split())
    if normalized.startswith("@"):
        if normalized.lower() not in ALIASES:
            raise ValueError(f"unknown alias {normalized!r} (allowed: {', '.join(sorted(ALIASES))})")
        return normalized.lower()
    fields = normalized.split(" ")
    if len(fields) != 5:
        raise ValueError(
            f"{normalized!r} has {len(fields)} fields; a cron expression has five: minute hour day-of-month month "
            "day-of-week"
        )
    if not croniter.is_valid(normalized):
        raise ValueError(f"{normalized!r} is not a valid cron expression")
    return normalized


def schedule_from_config(config: dict) -> CronSchedule:
    """The CronSchedule of a (validated) schedule trigger config."""
    return CronSchedule(parse_cron(config.get("cron")), parse_zone(config.get("timezone", "UTC")))


def _schedule(trigger_type: str, config: dict) -> dict:
    errors: dict[str, str] = {}
    _unknown_keys(config, {"cron", "timezone"}, errors)
    cron = zone = None
    try:
        cron = parse_cron(config.get("cron"))
    except ValueError as exc:
        errors["trigger_config.cron"] = str(exc)
    try:
        zone = parse_zone(config.get("timezone", "UTC"))
    except ValueError as exc:
        errors["trigger_config.timezone"] = str(exc)
    if cron and zone and CronSchedule(cron, zone).next_after(datetime.now(UTC)) is None:
        errors["trigger_config.cron"] = f"{cron!r} never fires (no such date)"
    if errors or zone is None:
        raise InvalidTrigger(errors)
    return {"cron": cron, "timezone": zone.key}


def _block(trigger_type: str, config: dict) -> dict:
    errors: dict[str, str] = {}
    _unknown_keys(config, {"chain_id", "every_n_blocks"}, errors)
    chain_id, every = config.get("chain_id"), config.get("every_n_blocks")
    chains = {c.chain_id: c for c in configured_chains()}
    if not isinstance(chain_id, int) or isinstance(chain_id, bool):
        errors["trigger_config.chain_id"] = "must be the integer id of a chain the platform lists"
    elif chain_id not in chains:
        listed = ", ".join(f"{c.chain_id} ({c.name})" for c in chains.values()) or "none configured"
        errors["trigger_config.chain_id"] = f"chain {chain_id} is not configured on this platform (listed: {listed})"
    if not isinstance(every, int) or isinstance(every, bool) or not 1 <= every <= MAX_EVERY_N_BLOCKS:
        errors["trigger_config.every_n_blocks"] = f"must be an integer from 1 to {MAX_EVERY_N_BLOCKS}"
    if errors:
        raise InvalidTrigger(errors)
    return {"chain_id": chain_id, "every_n_blocks": every}
