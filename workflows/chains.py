"""The EVM chains the platform lists (settings.CHAINS): platform configuration that
block triggers name by chain id (DESIGN.md §3, §5). The poller's JSON-RPC client is
scheduler.chains."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Chain:
    chain_id: int
    name: str
    rpc_url: str
    confirmations: int


def parse_chains(raw: object) -> tuple[Chain, ...]:
    """Validate settings.CHAINS (a list of {chain_id, name, rpc_url, confirmations})."""
    if not isinstance(raw, list):
        raise ImproperlyConfigured("CONVEYOR_CHAINS must be a JSON list of chains")
    chains: list[Chain] = []
    for index, item in enumerate(raw):
        where = f"CONVEYOR_CHAINS[{index}]"
        if not isinstance(item, dict):
            raise ImproperlyConfigured(f"{where} must be an object")
        unknown = set(item) - {"chain_id", "name", "rpc_url", "confirmations"}
        if unknown:
            raise ImproperlyConfigured(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        chain_id, rpc_url = item.get("chain_id"), item.get("rpc_url")
        confirmations = item.get("confirmations", 0)
        if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id <= 0:
            raise ImproperlyConfigured(f"{where}.chain_id must be a positive integer")
        if not isinstance(rpc_url, str) or urlsplit(rpc_url).scheme not in ("http", "https"):
            raise ImproperlyConfigured(f"{where}.rpc_url must be an http(s) URL")
        if not isinstance(confirmations, int) or isinstance(confirmations, bool) or not 0 <= confirmations <= 1000:
            raise ImproperlyConfigured(f"{where}.confirmations must be an integer from 0 to 1000")
        name = item.get("name", f"chain-{chain_id}")
        if not isinstance(name, str) or not name:
            raise ImproperlyConfigured(f"{where}.name must be a non-empty string")
        chains.append(Chain(chain_id, name, rpc_url, confirmations))
    ids = [c.chain_id for c in chains]
    if len(ids) != len(set(ids)):
        raise ImproperlyConfigured("CONVEYOR_CHAINS lists a chain_id twice")
    return tuple(chains)


def configured_chains() -> tuple[Chain, ...]:
    # Parsed on every call (a handful of entries): tests and operators change settings
    # without restarting anything.
    return parse_chains(settings.CHAINS)


def chain(chain_id: int) -> Chain | None:
    return next((c for c in configured_chains() if c.chain_id == chain_id), None)
