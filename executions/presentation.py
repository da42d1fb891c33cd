"""What customers are told about a run, and how its status looks, in one place: the
admin, the organization's pages and the API render their badges, dots, explanations and
re-run notices from here (DESIGN.md §7). The per-code messages are failures.catalogue's.

System Error (the platform failed) is amber and distinct from the red of Error (the
workflow or a service it called failed). A system error's code is shown beside it; its
explanation is honest: the platform failed, there is nothing to fix in the workflow, and
"safe to re-run" is said only when the run provably did no work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString

from failures.catalogue import MAY_HAVE_PARTLY_RUN, SAFE_TO_RERUN, safe_to_rerun
from failures.statuses import ERROR_STATUSES, TERMINAL, ErrorType, ExecutionStatus

S = ExecutionStatus


@dataclass(frozen=True)
class StatusLook:
    label: str
    colour: str  # badge background and dot
    text: str  # badge text colour
    icon: str


_MUTED = "#9ca3af"
LOOKS: dict[str, StatusLook] = {
    S.PENDING: StatusLook(S.PENDING.label, "#6b7280", "#ffffff", "\u25f7"),  # grey, clock
    S.RUNNING: StatusLook(S.RUNNING.label, "#2563eb", "#ffffff", "\u25b6"),  # blue, play
    S.SUCCESS: StatusLook(S.SUCCESS.label, "#16a34a", "#ffffff", "\u2713"),  # green, check
    S.ERROR: StatusLook(S.ERROR.label, "#dc2626", "#ffffff", "\u2715"),  # red, cross
    S.SYSTEM_ERROR: StatusLook(S.SYSTEM_ERROR.label, "#d97706", "#ffffff", "\u26a0"),  # amber, warning
    S.CANCELLED: StatusLook(S.CANCELLED.label, _MUTED, "#ffffff", "\u2298"),  # muted, slashed circle
    S.SKIPPED: StatusLook(S.SKIPPED.label, _MUTED, "#ffffff", "\u21b7"),  # muted, skip arrow
}
_UNKNOWN = StatusLook("Unknown", "#6b7280", "#ffffff", "?")

SYSTEM_ERROR_HEADLINE = "The Conveyor platform failed, not your workflow: there is nothing to fix in your workflow."
ERROR_HEADLINE = "Your workflow, or a service it called, failed: see the failing step for the reason."


def look(status: str) -> StatusLook:
    return LOOKS.get(status, _UNKNOWN)


def badge_html(status: str, code: str = "") -> SafeString:
    """The coloured badge (icon + label), with a system error's code beside it."""
    style = look(status)
    badge = format_html(
        '<span class="cv-badge cv-badge-{}" data-status="{}" style="display:inline-block;padding:1px 8px;'
        "border-radius:9px;background:{};color:{};font-weight:600;white-space:nowrap;"
        'font-size:12px;line-height:18px"><span aria-hidden="true">{}</span> {}</span>',
        status,
        status,
        style.colour,
        style.text,
        style.icon,
        style.label,
    )
    if status == S.SYSTEM_ERROR and code:
        return format_html(
            '{} <code class="cv-code" style="font-size:12px;color:#92400e;font-weight:600">{}</code>', badge, code
        )
    return badge


def dot_html(status: str) -> SafeString:
    style = look(status)
    return format_html(
        '<span class="cv-dot" data-status="{}" title="{}" style="display:inline-block;width:10px;height:10px;'
        'border-radius:50%;background:{};vertical-align:middle"></span>',
        status,
        style.label,
        style.colour,
    )


def label_with_icon(status: str) -> str:
    style = look(status)
    return f"{style.icon} {style.label}"


FINISHED_NOTICE = "This run finished; a re-run runs the workflow's current definition with the same input."


def rerun_notice(execution) -> str:
    """What the admin, the API and the pages say next to a re-run button.

    "Safe to re-run" only for runs that provably did no work (producer codes, P-0005,
    P-0002, P-0001); other system errors may have partly run.
    """
    if execution.status not in TERMINAL:
        return ""
    if safe_to_rerun(error_type=execution.error_type, error_code=execution.error_code):
        return SAFE_TO_RERUN
    if execution.error_type == ErrorType.SYSTEM:
        return MAY_HAVE_PARTLY_RUN
    return FINISHED_NOTICE


def explanation(status: str, error_type: str = "", error_code: str = "") -> str:
    """What a customer reads when hovering a failed run's badge ("" for other statuses)."""
    if status == S.SYSTEM_ERROR or error_type == ErrorType.SYSTEM:
        safe = safe_to_rerun(error_type=ErrorType.SYSTEM, error_code=error_code)
        notice = SAFE_TO_RERUN if safe else MAY_HAVE_PARTLY_RUN
        reference = f" Reference: {error_code}." if error_code else ""
        return f"{SYSTEM_ERROR_HEADLINE} {notice}{reference}"
    if status in ERROR_STATUSES:
        return ERROR_HEADLINE
    return ""


SYSTEM_STEP_MESSAGE = "The platform failed while running this step: see the run's error."
_SHOWN_STEP_ERRORS = frozenset({ErrorType.USER, ErrorType.EXTERNAL})


def step_error_text(step_error_type: str, step_error_message: str, run_customer_message: str = "") -> str:
    """What a customer reads about a failed step: a user or external error's own message;
    for a system error the run's customer message (catalogue text and code), never the
    step's stored text, which is internal (it may hold a host, SQL or a stack trace)."""
    if not step_error_type:
        return ""
    if step_error_type in _SHOWN_STEP_ERRORS:
        return step_error_message
    return run_customer_message or SYSTEM_STEP_MESSAGE


def duration_text(milliseconds: int | None) -> str:
    if milliseconds is None:
        return "–"
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.1f} s"
    minutes, seconds = divmod(milliseconds // 1000, 60)
    return f"{minutes} min {seconds} s"


REUSED_STEP = "reused from the original run"


def attempt_lines(attempts: list | None, *, internal: bool = False) -> list[str]:
    """One line per recorded attempt of a step with a retry policy ("#2 error (external):
    ... - retried after 1.0 s"). A customer sees a user or external error's own message
    and a system error's code; `internal` (staff) adds a system error's stored text."""
    lines = []
    for record in attempts or []:
        if not isinstance(record, dict):
            continue
        line = f"#{record.get('attempt', '?')} {record.get('outcome', '?')}"
        error_type = record.get("error_type") or ""
        if error_type:
            line += f" ({error_type}{', ' + record['error_code'] if record.get('error_code') else ''})"
            message = record.get("error_message") or ""
            if message and (internal or error_type in _SHOWN_STEP_ERRORS):
                line += f": {message[:300]}"
        if record.get("retry_in_s") is not None:
            line += f" - retried after {float(record['retry_in_s']):.1f} s"
        lines.append(line)
    return lines


def resumed_notice(execution) -> str:
    """ "resumed from <run> at step <id>" on a resume's detail, else ""."""
    return execution.resumed_notice


# --- platform incidents ------------------------------------------------------------------
# The incidents app sits above this one (it reads runs), so it registers the function that
# says which incident a run belongs to (incidents.queries.customer_notice) when it loads;
# the admin, the pages and the API ask here. What it returns has `notice` (the sentence a
# customer reads) and `as_data()` (the API's object), nothing internal.
_incident_notice: Callable[[Any], Any] | None = None


def register_incident_notice(provider: Callable[[Any], Any]) -> None:
    global _incident_notice
    _incident_notice = provider


def incident_notice(execution) -> Any:
    """The platform incident a run belongs to, as its customer may see it (None if none)."""
    if _incident_notice is None or execution is None:
        return None
    return _incident_notice(execution)
