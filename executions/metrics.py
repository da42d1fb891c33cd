"""Prometheus metrics, declared once, prefixed `conveyor_`, with bounded label values
(statuses, error types, categories, codes, actors, trigger types, rule names: all
closed sets from the catalogue and the status module)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TRANSITIONS = Counter("conveyor_transitions", "Status transitions written", ["from_status", "to_status"])
TRANSITION_CONFLICTS = Counter(
    "conveyor_transition_conflicts", "Status writes that lost their compare-and-swap", ["to_status", "actor"]
)
SELF_HEALS = Counter("conveyor_self_heals", "Runs that left a terminal status through a self-heal", ["move"])
LATE_RESULTS_DISCARDED = Counter(
    "conveyor_late_results_discarded", "Results that arrived after the run was already terminal", ["outcome"]
)
STEPS_REFUSED = Counter("conveyor_steps_refused", "Step starts refused because the claim no longer owns the run")
RUNS_CREATED = Counter("conveyor_runs_created", "Runs created by producers", ["trigger_type"])
ENQUEUE_FAILURES = Counter(
    "conveyor_enqueue_failures", "Producers that could not send a run's message", ["producer", "code"]
)
MISSED_DISPATCHES = Counter(
    "conveyor_missed_dispatches",
    "Fire times and blocks recorded as not dispatched in time (an outage), by producer and code",
    ["producer", "code"],
)
CLAIMS = Counter("conveyor_claims", "Consumer outcomes per message", ["outcome"])
DEAD_LETTERED = Counter("conveyor_dead_lettered", "Messages copied to the dead-letter queue", ["reason"])
REAPED = Counter("conveyor_reaped", "Runs the reaper finished", ["code"])
REAPER_SWEEPS = Counter("conveyor_reaper_sweeps", "Reaper sweeps by outcome", ["outcome"])
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
START_DELAY = Histogram(
    "conveyor_start_delay_seconds",
    "Delay from run creation to its start",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
