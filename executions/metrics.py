"""Prometheus metrics of the execution model: status writes and run creation. Declared
once, prefixed `conveyor_`, with bounded label values (statuses, actors, trigger types,
codes, move names: closed sets from failures.statuses and failures.catalogue)."""

from __future__ import annotations

from prometheus_client import Counter

from failures.statuses import TERMINAL

TRANSITIONS = Counter("conveyor_transitions", "Status transitions written", ["from_status", "to_status"])
TRANSITION_CONFLICTS = Counter(
    "conveyor_transition_conflicts", "Status writes that lost their compare-and-swap", ["to_status", "actor"]
)
SELF_HEALS = Counter("conveyor_self_heals", "Runs that left a terminal status through a self-heal", ["move"])
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
# The error budget's SLI (docs/decisions/0011-error-budget.md, deploy/prometheus/alerts.yml):
# every run once, at the first terminal status it reached, whatever moves it made later
# (self-heals, reclassifications). All five terminal statuses are counted; the SLI itself
# counts only success, error and system_error (the rules select them).
RUNS_FINISHED = Counter("conveyor_runs_finished", "Runs at their first terminal status, by that status", ["status"])
# Every series exists at 0 from the moment a process starts: rate() over a series that
# appears only with its first increment misses that increment, and a fresh installation's
# first outage would be under-counted exactly when it matters.
for _status in sorted(TERMINAL):
    RUNS_FINISHED.labels(status=_status)
# Resumes (executions/resume.py): who asked (operator in the admin, api, the system-error
# retry policy) and how it went: resumed, refused, needs_confirmation (the interrupted step
# may repeat and is not idempotent: the policy leaves such runs for an operator),
# enqueue_failed.
RESUMES = Counter("conveyor_resumes", "Resumes of failed runs, by origin and outcome", ["origin", "outcome"])
