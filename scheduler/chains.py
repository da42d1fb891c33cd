"""A JSON-RPC client for the EVM chains the platform lists (workflows.chains).

Chain RPC URLs are platform configuration (DESIGN.md §3): their failure is the platform's
N-0001, never a workflow's. They may carry a provider's API key in their path or query,
so error messages never include them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from web3 import Web3

from failures.errors import ChainRPCUnavailable
from workflows.chains import Chain


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
