"""The failure digest: one organization, one period (daily or weekly).

Totals by status, the success rate over both error statuses (success / (success + error +
system_error), from ``COUNTED_FOR_SUCCESS_RATE``), system errors counted and listed apart
from the workflows' own errors, and the top failing workflows with their last
customer-facing error (``Execution.customer_message``: the catalogue text and code for a
system error, never its internal message).

Periods are aligned (UTC midnight; the week starts on Monday) so that the beat task, a
redelivered task and the ``print_digest`` command all speak of the same period, and a
digest is sent once per organization and period (``FailureDigest``'s unique constraint).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from executions.models import Execution, Step
from failures.catalogue import CATALOGUE, customer_message
from failures.statuses import (
    COUNTED_FOR_SUCCESS_RATE,
    FAILED_FOR_DIGEST,
    TERMINAL,
    ErrorType,
    ExecutionStatus,
    TriggerType,
)
from incidents.queries import touching_organization
from observability.metrics import DIGESTS
from observability.models import DigestPeriod, FailureDigest
from tenancy.models import Member, Organization
from workflows.models import Workflow

logger = logging.getLogger("conveyor.digest")
PERIOD_LENGTH = {DigestPeriod.DAILY: timedelta(days=1), DigestPeriod.WEEKLY: timedelta(days=7)}
# The success rate's numerator: what counts in the denominator without having failed.
SUCCEEDED = COUNTED_FOR_SUCCESS_RATE - FAILED_FOR_DIGEST


def period_bounds(period: str, until: datetime | None = None) -> tuple[datetime, datetime]:
    """The last complete period before *until* (default now): [start, end) in UTC."""
    if period not in PERIOD_LENGTH:
        raise ValueError(f"unknown digest period {period!r}; allowed: {', '.join(PERIOD_LENGTH)}")
    until = timezone.localtime(until or timezone.now(), UTC)
    end = until.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == DigestPeriod.WEEKLY:
        end -= timedelta(days=end.weekday())
    return end - PERIOD_LENGTH[period], end


@dataclass
class ErrorLine:
    execution_id: str
    workflow: str
    finished_at: str
    status: str
    error_type: str
    error_code: str
    message: str


@dataclass
class CodeLine:
    code: str
    category: str
    count: int
    message: str


@dataclass
class WorkflowLine:
    workflow_id: int
    workflow: str
    failed: int
    system_errors: int
    workflow_errors: int
    last_error: str
    last_error_code: str
    last_error_at: str


@dataclass
class IncidentLine:
    """A platform incident that touched the organization: when, and how many of its runs
    (what a customer may know: no title, notes or codes)."""

    started_at: str
    resolved_at: str  # "" while it is ongoing
    runs: int


@dataclass
class Digest:
    organization: str
    organization_name: str
    period: str
    start: str
    end: str
    totals: dict[str, int]
    runs_finished: int
    succeeded: int
    counted_for_success_rate: int
    success_rate: float | None
    system_errors: int
    workflow_errors: int
    workflow_errors_by_type: dict[str, int]
    system_errors_by_code: list[CodeLine] = field(default_factory=list)
    recent_system_errors: list[ErrorLine] = field(default_factory=list)
    recent_workflow_errors: list[ErrorLine] = field(default_factory=list)
    top_workflows: list[WorkflowLine] = field(default_factory=list)
    # Recovery (issue 13): runs that retried a step, runs that were resumes, and failed runs
    # the retry policy left for an operator (their interrupted step is not safe to repeat).
    retried_runs: int = 0
    resumed_runs: int = 0
    left_for_operator: int = 0
    incidents: list[IncidentLine] = field(default_factory=list)

    def as_data(self) -> dict:
        return asdict(self)

    @property
    def is_empty(self) -> bool:
        return self.runs_finished == 0


def _iso(value: datetime | None) -> str:
    return timezone.localtime(value, UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _error_line(row: Execution, names: dict[int, str]) -> ErrorLine:
    return ErrorLine(
        execution_id=str(row.pk),
        workflow=names.get(row.workflow_id, str(row.workflow_id)),
        finished_at=_iso(row.finished_at),
        status=row.status,
        error_type=row.error_type,
        error_code=row.error_code,
        message=row.customer_message,
    )


def build_digest(organization: Organization, period: str, until: datetime | None = None) -> Digest:
    start, end = period_bounds(period, until)
    finished = Execution.objects.filter(
        organization=organization, finished_at__gte=start, finished_at__lt=end, status__in=sorted(TERMINAL)
    )
    failed = finished.filter(status__in=sorted(FAILED_FOR_DIGEST))
    system = Q(error_type=ErrorType.SYSTEM)

    totals = dict.fromkeys((s for s in ExecutionStatus.values if s in TERMINAL), 0)
    by_type: dict[str, int] = {ErrorType.USER: 0, ErrorType.EXTERNAL: 0}
    system_errors = 0
    for status, error_type, n in finished.values_list("status", "error_type").annotate(n=Count("*")).order_by():
        totals[status] = totals.get(status, 0) + n
        if status in FAILED_FOR_DIGEST:
            if error_type == ErrorType.SYSTEM:
                system_errors += n
            else:
                by_type[error_type or "unknown"] = by_type.get(error_type or "unknown", 0) + n
    succeeded = sum(totals[s] for s in SUCCEEDED)
    counted = sum(totals[s] for s in COUNTED_FOR_SUCCESS_RATE)

    names = dict(Workflow.objects.filter(organization=organization).values_list("id", "name"))
    recent = int(settings.DIGEST_RECENT_ERRORS)
    columns = ("id", "workflow_id", "finished_at", "status", "error_type", "error_code", "error_message")
    newest_first = ("-finished_at", "-pk")

    by_code = failed.filter(system).values_list("error_code").annotate(n=Count("*")).order_by("-n", "error_code")
    code_lines = [
        CodeLine(
            code=code,
            category=CATALOGUE[code].category if code in CATALOGUE else "",
            count=n,
            message=customer_message(status="", error_type=ErrorType.SYSTEM, error_code=code, error_message=""),
        )
        for code, n in by_code
    ]

    top = (
        failed.values("workflow_id")
        .annotate(failed=Count("*"), system=Count("pk", filter=system), last=Max("finished_at"))
        .order_by("-failed", "-last", "workflow_id")[: int(settings.DIGEST_TOP_WORKFLOWS)]
    )
    top_lines = []
    for row in top:
        last = failed.filter(workflow_id=row["workflow_id"]).only(*columns).order_by(*newest_first).first()
        top_lines.append(
            WorkflowLine(
                workflow_id=row["workflow_id"],
                workflow=names.get(row["workflow_id"], str(row["workflow_id"])),
                failed=row["failed"],
                system_errors=row["system"],
                workflow_errors=row["failed"] - row["system"],
                last_error=last.customer_message if last else "",
                last_error_code=last.error_code if last else "",
                last_error_at=_iso(last.finished_at) if last else "",
            )
        )

    return Digest(
        organization=organization.slug,
        organization_name=organization.name,
        period=period,
        start=_iso(start),
        end=_iso(end),
        totals=totals,
        runs_finished=sum(totals.values()),
        succeeded=succeeded,
        counted_for_success_rate=counted,
        success_rate=(succeeded / counted) if counted else None,
        system_errors=system_errors,
        workflow_errors=sum(by_type.values()),
        workflow_errors_by_type=by_type,
        system_errors_by_code=code_lines,
        recent_system_errors=[
            _error_line(r, names) for r in failed.filter(system).only(*columns).order_by(*newest_first)[:recent]
        ],
        recent_workflow_errors=[
            _error_line(r, names) for r in failed.exclude(system).only(*columns).order_by(*newest_first)[:recent]
        ],
        top_workflows=top_lines,
        retried_runs=finished.filter(
            # A second attempt record: the step was retried at least once.
            Exists(Step.objects.filter(execution_id=OuterRef("pk"), attempts__1__isnull=False))
        ).count(),
        resumed_runs=finished.filter(trigger_type=TriggerType.RESUME).count(),
        left_for_operator=failed.filter(left_for_operator=True).count(),
        incidents=[
            IncidentLine(started_at=_iso(i.started_at), resolved_at=_iso(i.resolved_at), runs=i.runs)
            for i in touching_organization(organization.pk, start, end)
        ],
    )


# --------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------


def subject(digest: Digest) -> str:
    return (
        f"[Conveyor] {digest.organization_name}: {digest.period} failure digest {digest.start[:10]} - "
        f"{digest.system_errors} system errors, {digest.workflow_errors} workflow errors"
    )


def _rate(digest: Digest) -> str:
    if digest.success_rate is None:
        return "n/a (no run succeeded or failed)"
    return (
        f"{digest.success_rate:.1%} ({digest.succeeded} of {digest.counted_for_success_rate} runs that succeeded "
        f"or failed, system errors included; cancelled and skipped runs are not counted)"
    )


def render_text(digest: Digest) -> str:
    labels = dict(ExecutionStatus.choices)
    lines = [
        f"Conveyor failure digest for {digest.organization_name} ({digest.organization})",
        f"{digest.period.capitalize()}: {digest.start} to {digest.end}",
        "",
        f"Runs finished: {digest.runs_finished}",
        "  " + " | ".join(f"{labels.get(s, s)}: {n}" for s, n in digest.totals.items()),
        f"Success rate: {_rate(digest)}",
        "",
        f"System errors (platform failures, not your workflows' fault): {digest.system_errors}",
    ]
    for code in digest.system_errors_by_code:
        lines.append(f"  {code.code} ({code.category}) x{code.count}: {code.message}")
    if digest.recent_system_errors:
        lines.append("  Most recent:")
        lines += [
            f"   - {e.finished_at} {e.workflow} run {e.execution_id}: {e.error_code}"
            for e in digest.recent_system_errors
        ]
    if digest.incidents:
        lines += ["", "Platform incidents that affected your runs (the platform failed, not your workflows):"]
        lines += [
            f"  - started {i.started_at}, "
            + (f"resolved {i.resolved_at}" if i.resolved_at else "ongoing")
            + f": {i.runs} of your runs"
            for i in digest.incidents
        ]
    by_type = ", ".join(f"{k} {v}" for k, v in digest.workflow_errors_by_type.items())
    lines += ["", f"Workflow errors (your steps or the services they call): {digest.workflow_errors} ({by_type})"]
    if digest.recent_workflow_errors:
        lines.append("  Most recent:")
        lines += [
            f"   - {e.finished_at} {e.workflow} run {e.execution_id} ({e.error_type}): {e.message}"
            for e in digest.recent_workflow_errors
        ]
    lines += [
        "",
        f"Recovery: {digest.retried_runs} runs retried a step, {digest.resumed_runs} runs were resumes of failed runs, "
        f"{digest.left_for_operator} failed runs wait for an operator (their interrupted step is not safe to repeat)",
    ]
    lines += ["", "Top failing workflows:"]
    if not digest.top_workflows:
        lines.append("  none")
    for rank, wf in enumerate(digest.top_workflows, 1):
        lines.append(
            f"  {rank}. {wf.workflow}: {wf.failed} failed ({wf.workflow_errors} workflow errors, "
            f"{wf.system_errors} system errors); last error {wf.last_error_at}: {wf.last_error}"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# delivery
# --------------------------------------------------------------------------------------


def recipients(organization: Organization) -> list[str]:
    emails = Member.objects.filter(organization=organization, user__is_active=True).values_list(
        "user__email", flat=True
    )
    return sorted({email for email in emails if email})


def deliver(organization: Organization, period: str, until: datetime | None = None) -> FailureDigest | None:
    """Build, store and email the digest of the last complete period; once per
    organization and period. An organization with no finished run in the period gets
    nothing."""
    start, end = period_bounds(period, until)
    try:
        return _deliver(organization, period, start, end, until)
    except IntegrityError:  # a concurrent delivery of the same digest stored it first: it sends it
        DIGESTS.labels(period=period, outcome="already_sent").inc()
        return FailureDigest.objects.filter(organization=organization, period=period, period_start=start).first()


def _deliver(
    organization: Organization, period: str, start: datetime, end: datetime, until: datetime | None
) -> FailureDigest | None:
    with transaction.atomic():
        existing = (
            FailureDigest.objects.select_for_update()
            .filter(organization=organization, period=period, period_start=start)
            .first()
        )
        if existing is not None and existing.sent_at is not None:
            DIGESTS.labels(period=period, outcome="already_sent").inc()
            return existing
        digest = build_digest(organization, period, until)
        if digest.is_empty:
            DIGESTS.labels(period=period, outcome="empty").inc()
            return None
        to = recipients(organization)
        record = existing or FailureDigest(organization=organization, period=period, period_start=start)
        record.period_end = end
        record.runs_finished = digest.runs_finished
        record.success_rate = digest.success_rate
        record.system_errors = digest.system_errors
        record.workflow_errors = digest.workflow_errors
        record.subject = subject(digest)[:300]
        record.body = render_text(digest)
        record.data = digest.as_data()
        record.recipients = ", ".join(to)
        record.save()
        if to:
            send_mail(record.subject, record.body, settings.DEFAULT_FROM_EMAIL, to, fail_silently=False)
            record.sent_at = timezone.now()
            record.save(update_fields=["sent_at"])
    DIGESTS.labels(period=period, outcome="sent" if to else "no_recipients").inc()
    logger.info(
        "failure digest %s for %s",
        period,
        organization.slug,
        extra={
            "event": "failure_digest",
            "organization": organization.slug,
            "period": period,
            "recipients": len(to),
            "system_errors": digest.system_errors,
            "workflow_errors": digest.workflow_errors,
        },
    )
    return record
