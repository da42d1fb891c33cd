"""The block poller: fires block-triggered workflows every N confirmed blocks
(DESIGN.md §5, docs/decisions/0004-triggers.md).

Per chain listed in settings.CHAINS, one poll at a time (a lease row):
head over JSON-RPC → confirmed = head - confirmations → every block in
(cursor, confirmed] whose number is divisible by a workflow's N is read (number, hash,
timestamp) and enqueued for that workflow with dispatch key
`block:<workflow id>:<chain id>:<number>` → the cursor moves to the last block handled.

- The cursor is in the database and moves only after the blocks before it were
  enqueued: a poller killed mid-pass repeats at most the blocks after its cursor, and the
  dispatch keys turn those repeats into nothing. A restart neither skips nor repeats.
- On first sight of a chain the cursor starts at the confirmed head: no history replay.
- After downtime the gap is caught up to CONVEYOR_BLOCK_CATCHUP_MAX_BLOCKS behind the
  confirmed head. Every block beyond that bound that a workflow would have fired for is
  recorded as a run of its own, `system_error` BS-0002 with no work done (at most
  CONVEYOR_MISSED_RUN_RECORDS_MAX per workflow and pass, the latest; the older rest in one
  summary record), counted and logged: never silently dropped, never replayed.
- An RPC failure is N-0001 on the poller's own metric, log and cursor row; no run is
  invented and the cursor stays where the last good read left it.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from executions.enqueue import EnqueueFailed, Missed, enqueue, record_missed
from failures.catalogue import Code
from failures.errors import ChainRPCUnavailable
from failures.statuses import TriggerType
from reaper import lease
from scheduler import metrics
from scheduler.chains import Block, ChainClient
from scheduler.models import ChainCursor
from workflows.chains import Chain, configured_chains
from workflows.models import Workflow
from workflows.triggers import InvalidTrigger, validate_trigger

logger = logging.getLogger("conveyor.blocks")


@dataclass
class ChainPollReport:
    chain_id: int
    acquired: bool = True
    head: int | None = None
    cursor_before: int | None = None
    cursor_after: int | None = None
    fired: list[str] = field(default_factory=list)
    duplicates: int = 0
    failed: list[str] = field(default_factory=list)
    skipped_blocks: int = 0
    missed_runs: int = 0  # BS-0002: runs the skipped blocks would have been
    error_code: str = ""
    error: str = ""


def dispatch_key(workflow_id: int, chain_id: int, number: int) -> str:
    return f"block:{workflow_id}:{chain_id}:{number}"


def poll_all(now: datetime | None = None) -> list[ChainPollReport]:
    """One pass over every configured chain; one chain's failure never stops another."""
    reports = []
    for chain in configured_chains():
        try:
            reports.append(poll_chain(chain, now=now))
        except Exception as exc:
            metrics.BLOCK_POLLS.labels(chain_id=str(chain.chain_id), outcome="error").inc()
            logger.exception("block poll failed", extra={"chain_id": chain.chain_id})
            reports.append(ChainPollReport(chain.chain_id, error=f"{type(exc).__name__}"))
    return reports


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def poll_chain(chain: Chain, *, now: datetime | None = None, client: ChainClient | None = None) -> ChainPollReport:
    label = str(chain.chain_id)
    lease_name, holder = f"block-poller:{chain.chain_id}", _holder()
    if not lease.acquire(lease_name, holder, settings.BLOCK_POLL_LEASE_S):
        metrics.BLOCK_POLLS.labels(chain_id=label, outcome="lease_held").inc()
        return ChainPollReport(chain.chain_id, acquired=False)
    try:
        report = _poll(chain, client or ChainClient(chain), now or timezone.now())
    finally:
        lease.release(lease_name, holder)
    if report.error_code:
        metrics.BLOCK_POLLS.labels(chain_id=label, outcome="rpc_unavailable").inc()
    else:
        metrics.BLOCK_POLLS.labels(chain_id=label, outcome="ok").inc()
    return report


def _block_workflows(chain_id: int) -> list[tuple[Workflow, int]]:
    """Enabled block workflows of this chain with their N (invalid configs logged, left out)."""
    found = []
    rows = Workflow.objects.alive().filter(
        enabled=True, trigger_type=TriggerType.BLOCK, trigger_config__chain_id=chain_id
    )
    for workflow in rows.order_by("pk"):
        try:
            config = validate_trigger(workflow.trigger_type, workflow.trigger_config)
        except InvalidTrigger as exc:
            metrics.BLOCK_FIRES.labels(chain_id=str(chain_id), outcome="invalid").inc()
            logger.warning("block trigger has an invalid config: %s", exc, extra={"workflow_id": workflow.pk})
            continue
        found.append((workflow, config["every_n_blocks"]))
    return found


def _cursor(chain: Chain, confirmed: int) -> tuple[ChainCursor, bool]:
    try:
        with transaction.atomic():
            return ChainCursor.objects.get_or_create(
                chain_id=chain.chain_id, defaults={"last_block": max(confirmed, 0)}
            )
    except IntegrityError:  # created by a concurrent poller (the lease expired under it)
        return ChainCursor.objects.get(chain_id=chain.chain_id), False


def _poll(chain: Chain, client: ChainClient, now: datetime) -> ChainPollReport:
    report = ChainPollReport(chain.chain_id)
    try:
        actual = client.chain_id()
        if actual != chain.chain_id:
            # A misconfigured URL would fire workflows for the wrong chain: refuse, loudly.
            metrics.BLOCK_POLLS.labels(chain_id=str(chain.chain_id), outcome="wrong_chain").inc()
            message = f"RPC endpoint of chain {chain.chain_id} ({chain.name}) answers chain id {actual}"
            _record_error(chain, Code.C0003, message, now, report)
            return report
        report.head = client.head()
    except ChainRPCUnavailable as exc:
        _record_error(chain, exc.code, exc.message, now, report)
        return report

    confirmed = report.head - chain.confirmations
    cursor, created = _cursor(chain, confirmed)
    report.cursor_before = report.cursor_after = cursor.last_block
    if created or confirmed <= cursor.last_block:
        if report.head < cursor.last_block:
            logger.warning(
                "chain head is behind the poller's cursor (node reset or deep reorg?): waiting for it",
                extra={"chain_id": chain.chain_id, "head": report.head, "cursor": cursor.last_block},
            )
        _save_cursor(cursor, cursor.last_block, report.head, now)
        return report

    start = cursor.last_block + 1
    floor = confirmed - settings.BLOCK_CATCHUP_MAX_BLOCKS + 1
    workflows = _block_workflows(chain.chain_id)
    if start < floor:
        report.skipped_blocks = floor - start
        metrics.BLOCKS_SKIPPED.labels(chain_id=str(chain.chain_id)).inc(report.skipped_blocks)
        logger.warning(
            "block poller fell behind beyond its catch-up bound: %d blocks skipped",
            report.skipped_blocks,
            extra={"event": "blocks_skipped", "chain_id": chain.chain_id, "from": start, "to": floor - 1},
        )
        for workflow, every in workflows:
            _record_missed(chain, workflow, _multiples(every, start, floor - 1), report)
        start = floor

    due = sorted({n for _, every in workflows for n in _multiples(every, start, confirmed)})
    handled = start - 1
    try:
        for number in due:
            block = client.block(number)
            for workflow, every in workflows:
                if number % every == 0:
                    _fire(chain, workflow, block, report)
            handled = number
        handled = confirmed
    except ChainRPCUnavailable as exc:
        # Keep what was done: the cursor stops before the block that could not be read.
        _record_error(chain, exc.code, exc.message, now, report)
    _save_cursor(cursor, handled, report.head, now, clear_error=not report.error_code)
    report.cursor_after = handled
    return report


def _multiples(every: int, start: int, end: int) -> range:
    first = max(every, -(-start // every) * every)  # block 0 (genesis) never fires
    return range(first, end + 1, every)


def _record_missed(chain: Chain, workflow: Workflow, numbers: range, report: ChainPollReport) -> None:
    """BS-0002 records for the blocks beyond the catch-up bound this workflow would have
    fired for."""
    chain_input = {"chain_id": chain.chain_id, "name": chain.name}
    count = record_missed(
        workflow,
        trigger_type=TriggerType.BLOCK,
        code=Code.BS0002,
        missed=(
            Missed(dispatch_key(workflow.pk, chain.chain_id, n), {"block": {"number": n}, "chain": chain_input}, str(n))
            for n in numbers
        ),
        cause="confirmed while the platform could not dispatch runs, beyond the poller's catch-up bound",
        what=f"blocks (every {numbers.step})",
        summary_key=f"block:{workflow.pk}:{chain.chain_id}",
        summary_input={"chain": chain_input},
    )
    report.missed_runs += count
    metrics.BLOCK_FIRES.labels(chain_id=str(chain.chain_id), outcome="missed").inc(count)


def _fire(chain: Chain, workflow: Workflow, block: Block, report: ChainPollReport) -> None:
    label = str(chain.chain_id)
    key = dispatch_key(workflow.pk, chain.chain_id, block.number)
    run_input = {"block": block.as_input(), "chain": {"chain_id": chain.chain_id, "name": chain.name}}
    try:
        enqueued = enqueue(workflow, trigger_type=TriggerType.BLOCK, dispatch_key=key, input=run_input)
    except EnqueueFailed:
        # The run exists as system_error BS-0001; the block is handled (the retry policy may re-run it).
        report.failed.append(key)
        metrics.BLOCK_FIRES.labels(chain_id=label, outcome="enqueue_failed").inc()
        return
    if enqueued.created:
        report.fired.append(key)
        metrics.BLOCK_FIRES.labels(chain_id=label, outcome="fired").inc()
    else:
        report.duplicates += 1
        metrics.BLOCK_FIRES.labels(chain_id=label, outcome="duplicate").inc()


def _save_cursor(
    cursor: ChainCursor, last_block: int, head: int | None, now: datetime, clear_error: bool = True
) -> None:
    # Forward only: a slower poller (whose lease expired under it) never rewinds the cursor.
    updates: dict = {"head_seen": head, "last_polled_at": now}
    if clear_error:
        updates.update(last_error_code="", last_error="")
    ChainCursor.objects.filter(pk=cursor.pk).update(**updates)
    ChainCursor.objects.filter(pk=cursor.pk, last_block__lt=last_block).update(last_block=last_block)


def _record_error(chain: Chain, code: str, message: str, now: datetime, report: ChainPollReport) -> None:
    report.error_code, report.error = code, message
    metrics.BLOCK_POLLER_ERRORS.labels(chain_id=str(chain.chain_id), code=code).inc()
    logger.error(
        "block poller: %s",
        message,
        extra={"event": "block_poll_failed", "chain_id": chain.chain_id, "error_code": code},
    )
    ChainCursor.objects.filter(chain_id=chain.chain_id).update(
        last_error_code=code, last_error=message[:2000], last_error_at=now, last_polled_at=now
    )
