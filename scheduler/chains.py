"""The EVM chains the platform lists (settings.CHAINS) and a JSON-RPC client for them.

Chain RPC URLs are platform configuration (DESIGN.md §3): their failure is the platform's
N-0001, never a workflow's. They may carry a provider's API key in their path or query,
so error messages never include them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from executions.errors import ChainRPCUnavailable


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
    return parse_chains(getattr(settings, "CHAINS", []))


def chain(chain_id: int) -> Chain | None:
    return next((c for c in configured_chains() if c.chain_id == chain_id), None)


@dataclass(frozen=True)
class Block:
    number: int
    hash: str
    timestamp: int

    def as_input(self) -> dict:
        return {"number": self.number, "hash": self.hash, "timestamp": self.timestamp}


def redact(text: str, rpc_url: str) -> str:
    """Remove the RPC URL's path and query (where providers put API keys) from a message."""
    parts = urlsplit(rpc_url)
    secret_bits = [rpc_url]
    if parts.path not in ("", "/"):
        secret_bits.append(parts.path)
    if parts.query:
        secret_bits.append(parts.query)
    for bit in sorted(secret_bits, key=len, reverse=True):
        text = text.replace(bit, "<redacted>")
    return text


class ChainClient:
    """Head and block reads over JSON-RPC (web3.py), failing fast: no retries here, the
    next poll is the retry. Every failure is ChainRPCUnavailable (N-0001)."""

    def __init__(self, chain: Chain, timeout: float | None = None):
        from web3 import Web3

        self.chain = chain
        self.w3 = Web3(
            Web3.HTTPProvider(
                chain.rpc_url,
                request_kwargs={"timeout": timeout or settings.BLOCK_RPC_TIMEOUT_S},
                exception_retry_configuration=None,
            )
        )

    def _call(self, what: str, fn):
        try:
            return fn()
        except Exception as exc:  # connection refused, timeout, 5xx, JSON-RPC error: all the endpoint's
            reason = redact(f"{type(exc).__name__}: {exc}", self.chain.rpc_url)[:500]
            raise ChainRPCUnavailable(
                f"chain {self.chain.chain_id} ({self.chain.name}) RPC {what} failed: {reason}"
            ) from exc

    def chain_id(self) -> int:
        return int(self._call("eth_chainId", lambda: self.w3.eth.chain_id))

    def head(self) -> int:
        return int(self._call("eth_blockNumber", lambda: self.w3.eth.block_number))

    def block(self, number: int) -> Block:
        data = self._call(f"eth_getBlockByNumber({number})", lambda: self.w3.eth.get_block(number))
        return Block(
            number=int(data["number"]), hash="0x" + bytes(data["hash"]).hex(), timestamp=int(data["timestamp"])
        )
