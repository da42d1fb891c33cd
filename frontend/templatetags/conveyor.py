"""Template tags of the runs pages: the status badge (with its honest tooltip), the dot,
and the label with its icon, all drawn by executions.presentation."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from executions import presentation

register = template.Library()


@register.simple_tag
def run_badge(run) -> SafeString:
    """Badge + code; a failed run's badge carries a tooltip saying whose fault it was."""
    badge = presentation.badge_html(run.status, run.error_code)
    text = presentation.explanation(run.status, run.error_type, run.error_code)
    if not text:
        return badge
    tip_id = f"tip-{run.pk}"
    return format_html(
        '<span class="cv-tip" tabindex="0" aria-describedby="{}">{}'
        '<span class="cv-tip-text" role="tooltip" id="{}">{}</span></span>',
        tip_id,
        badge,
        tip_id,
        text,
    )


@register.simple_tag
def status_badge(status: str, code: str = "") -> SafeString:
    return presentation.badge_html(status, code)


@register.simple_tag
def status_dot(status: str) -> SafeString:
    return presentation.dot_html(status)


@register.filter
def status_label(status: str) -> str:
    return presentation.label_with_icon(status)


@register.simple_tag
def step_error(step, run) -> str:
    return presentation.step_error_text(step.error_type, step.error_message, run.customer_message)


@register.filter
def step_duration(step) -> str:
    if step.finished_at is None:
        return "–"
    return presentation.duration_text(max(0, int((step.finished_at - step.started_at).total_seconds() * 1000)))


@register.filter
def duration(milliseconds) -> str:
    return presentation.duration_text(milliseconds)


@register.filter
def attempt_lines(step) -> list[str]:
    """A step's recorded attempts, as a customer may read them."""
    return presentation.attempt_lines(getattr(step, "attempts", None))
