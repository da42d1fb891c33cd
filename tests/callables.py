"""Callables the end-to-end tests allow-list for the `python` action."""

from __future__ import annotations

import time


def allocate(megabytes: int) -> dict:
    """Touch `megabytes` of memory: under the runtime's address-space limit this raises
    MemoryError inside the child, the runtime failing (P-0003)."""
    blocks = [bytearray(1024 * 1024) for _ in range(int(megabytes))]
    return {"allocated_mb": len(blocks)}


def sleep(seconds: float) -> dict:
    time.sleep(float(seconds))
    return {"slept": seconds}


def spin(seconds: float) -> dict:
    """Busy for `seconds` (holds the CPU, not the GIL-free sleep)."""
    end = time.monotonic() + float(seconds)
    n = 0
    while time.monotonic() < end:
        n += 1
    return {"spins": n}


def repeat(text: str, times: int) -> dict:
    """An output much larger than the config that asked for it."""
    return {"text": str(text) * int(times)}


def unstorable(kind: str) -> dict:
    """An output PostgreSQL cannot store: a NUL character or a NaN."""
    return {"text": "a\x00b"} if kind == "nul" else {"ratio": float("nan")}
