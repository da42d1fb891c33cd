"""Prometheus counters of the producers and the system-error retry policy (prefixed
`conveyor_`, bounded labels: outcomes are closed sets below, chain ids come from
settings, codes from the catalogue). Enqueue failures themselves are counted by
`conveyor_enqueue_failures{producer, code}` in scheduler.enqueue."""

from __future__ import annotations

from prometheus_client import Counter

# outcome: fired | duplicate | enqueue_failed | missed (CS-0002: not dispatched in time) | invalid | error
SCHEDULE_FIRES = Counter("conveyor_schedule_fires", "Schedule fire times handled by the dispatcher", ["outcome"])
SCHEDULE_TICKS = Counter("conveyor_schedule_ticks", "Schedule dispatcher ticks", ["outcome"])

# outcome: ok | rpc_unavailable | lease_held | wrong_chain | error
BLOCK_POLLS = Counter("conveyor_block_polls", "Block poller passes per chain", ["chain_id", "outcome"])
# The poller's own failures (N-0001: the chain's RPC endpoint is unavailable). No run is
# created for them: a poll that cannot read the chain invents nothing.
BLOCK_POLLER_ERRORS = Counter("conveyor_block_poller_errors", "Block poller failures by code", ["chain_id", "code"])
# outcome: fired | duplicate | enqueue_failed | missed (BS-0002, beyond the catch-up bound) | invalid
BLOCK_FIRES = Counter("conveyor_block_fires", "Block-triggered runs by outcome", ["chain_id", "outcome"])
BLOCKS_SKIPPED = Counter(
    "conveyor_block_blocks_skipped", "Confirmed blocks skipped because they lay beyond the catch-up bound", ["chain_id"]
)

# outcome: accepted | duplicate | redelivered (a retry of a delivery we answered 503) | unauthorized
#          | bad_request | too_large | unsupported_media_type | not_found | method_not_allowed | rate_limited
#          | enqueue_failed | error (the platform could not read the endpoint's secret: C-0004)
WEBHOOK_REQUESTS = Counter("conveyor_webhook_requests", "Event webhook deliveries by outcome", ["outcome"])

SYSTEM_RETRIES = Counter(
    "conveyor_system_retries",
    "Automatic re-runs of system errors that provably did no work, by the failed run's code",
    ["code"],
)
