"""Counters of the observability app's own work (the pipeline's are in executions.metrics)."""

from __future__ import annotations

from prometheus_client import Counter

RETENTION_DELETED = Counter("conveyor_retention_deleted", "Rows the retention task deleted, by table", ["table"])
DIGESTS = Counter("conveyor_failure_digests", "Failure digests by period and outcome", ["period", "outcome"])
