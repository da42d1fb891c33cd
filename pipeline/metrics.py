"""Prometheus metrics of the consumer and its runtimes (one set per worker process,
served by the worker's exporter). Declared once, prefixed `conveyor_`, with bounded label
values (outcomes below, statuses, error types, classifier rule names)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Histogram

# outcome: claimed | duplicate | requeued | dead_lettered | missing | skipped | backstop
CLAIMS = Counter("conveyor_claims", "Consumer outcomes per message", ["outcome"])
LATE_RESULTS_DISCARDED = Counter(
    "conveyor_late_results_discarded", "Results that arrived after the run was already terminal", ["outcome"]
)
CLASSIFIED = Counter(
    "conveyor_classified", "Failures classified, by matched rule and error type", ["rule", "error_type"]
)
UNCLASSIFIED = Counter("conveyor_unclassified", "Failures that fell through to C-0001, by matched rule", ["rule"])
EXECUTION_DURATION = Histogram(
    "conveyor_execution_duration_seconds",
    "Run duration by final status and error type",
    ["status", "error_type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
# How long a system error took to be found: from the run's last heartbeat (or its start,
# or its queueing when it never started) to the write, by code and by who wrote it:
# hook (a worker's main process, pipeline.failure_hooks), supervisor (the pool process
# that ran the run) or reaper. The reaper's share sits near CONVEYOR_STALE_AFTER_S.
DETECTION_WRITERS = ("hook", "supervisor", "reaper")
DETECTION_LATENCY = Histogram(
    "conveyor_detection_latency_seconds",
    "Time from a run's last heartbeat (or start) to its system error, by code and writer",
    ["code", "writer"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 90, 120, 300, 900, 3600),
)
# outcome: written | lost | not_ours | unclaimed | no_run | failed; rule: the classifier's.
FAILURE_HOOKS = Counter(
    "conveyor_failure_hooks", "Celery task failures a failure hook handled, by rule and outcome", ["rule", "outcome"]
)
START_DELAY = Histogram(
    "conveyor_start_delay_seconds",
    "Delay from run creation to its start",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
# Steps with a retry policy (workflows/retries.py): every attempt by outcome (success,
# error), and every step that was retried by how it ended (recovered, exhausted).
STEP_ATTEMPTS = Counter("conveyor_step_attempts", "Attempts of steps with a retry policy, by outcome", ["outcome"])
STEP_RETRIES = Counter("conveyor_step_retries", "Steps retried at least once, by how they ended", ["outcome"])


def observe_detection(code: str, writer: str, reference: datetime | None, now: datetime) -> None:
    """One system error found: `reference` is the run's last sign of life."""
    if reference is not None and code:
        DETECTION_LATENCY.labels(code=code, writer=writer).observe(max(0.0, (now - reference).total_seconds()))
