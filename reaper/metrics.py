"""Prometheus metrics of the reaper (served by the maintenance worker's exporter)."""

from __future__ import annotations

from prometheus_client import Counter

REAPED = Counter("conveyor_reaped", "Runs the reaper finished", ["code"])
# outcome: done | lease_held
REAPER_SWEEPS = Counter("conveyor_reaper_sweeps", "Reaper sweeps by outcome", ["outcome"])
