"""The incident page's chart: system errors per minute by code over the incident's span
(a few minutes either side for context), drawn as server-side SVG: no script, no chart
library, nothing fetched from elsewhere.

Read through exec_finished_status_idx (finished_at range, status), grouped by minute and
code in the database; a long span is drawn in wider buckets (at most MAX_BARS bars).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from executions.models import Execution
from failures.statuses import ExecutionStatus
from incidents.models import Incident

MAX_BARS = 240
CONTEXT = timedelta(minutes=5)
PALETTE = ["#d97706", "#2563eb", "#dc2626", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#6b7280"]
WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 960, 260, 44, 40, 16, 12


@dataclass
class Series:
    start: datetime  # first bucket
    bucket: timedelta
    codes: list[str]
    counts: list[dict[str, int]]  # per bucket: {code: errors}

    @property
    def peak(self) -> int:
        return max((sum(c.values()) for c in self.counts), default=0)

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts)


def series(incident: Incident, now: datetime | None = None) -> Series:
    now = now or timezone.now()
    end = incident.end if incident.end and not incident.is_open else now
    low = (incident.start - CONTEXT).replace(second=0, microsecond=0)
    high = max(end, incident.start) + CONTEXT
    minutes = max(1, math.ceil((high - low).total_seconds() / 60))
    per_bucket = max(1, math.ceil(minutes / MAX_BARS))
    bucket = timedelta(minutes=per_bucket)
    n = math.ceil(minutes / per_bucket)
    rows = (
        Execution.objects.filter(finished_at__gte=low, finished_at__lt=high, status=ExecutionStatus.SYSTEM_ERROR)
        .annotate(minute=TruncMinute("finished_at"))
        .values_list("minute", "error_code")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts: list[dict[str, int]] = [{} for _ in range(n)]
    codes: set[str] = set()
    for minute, code, count in rows:
        index = min(n - 1, int((minute - low).total_seconds() // bucket.total_seconds()))
        code = code or "?"
        codes.add(code)
        counts[index][code] = counts[index].get(code, 0) + count
    return Series(low, bucket, sorted(codes), counts)


def svg(data: Series, incident: Incident) -> SafeString:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(1, len(data.counts))
    bar_w = plot_w / n
    peak = max(4, math.ceil(data.peak / 4) * 4)  # whole numbers on the four grid lines
    colours = {code: PALETTE[i % len(PALETTE)] for i, code in enumerate(data.codes)}
    unit = "minute" if data.bucket == timedelta(minutes=1) else f"{int(data.bucket.total_seconds() // 60)} minutes"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="incident-chart" role="img" width="{WIDTH}" '
        f'height="{HEIGHT + 24}" viewBox="0 0 {WIDTH} {HEIGHT + 24}" font-family="sans-serif" font-size="11">',
        f"<title>System errors per {escape(unit)} by code</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#f9fafb" stroke="#e5e7eb"/>',
    ]
    # The incident's own span, shaded.
    span_end = incident.end if incident.end and not incident.is_open else None
    x0 = LEFT + (incident.start - data.start).total_seconds() / data.bucket.total_seconds() * bar_w
    x1 = (
        LEFT + (span_end - data.start).total_seconds() / data.bucket.total_seconds() * bar_w
        if span_end
        else LEFT + plot_w
    )
    parts.append(
        f'<rect class="incident-span" x="{x0:.1f}" y="{TOP}" width="{max(1.0, min(x1, LEFT + plot_w) - x0):.1f}" '
        f'height="{plot_h}" fill="#fde68a" opacity="0.35"/>'
    )
    for tick in range(0, 5):
        value = peak * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#374151">{value:g}</text>')
    for i, bucket in enumerate(data.counts):
        y = TOP + plot_h
        for code in data.codes:
            count = bucket.get(code, 0)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            when = timezone.localtime(data.start + data.bucket * i).strftime("%H:%M")
            parts.append(
                f'<rect class="bar" data-code="{escape(code)}" data-count="{count}" x="{LEFT + i * bar_w + 0.5:.1f}" '
                f'y="{y:.1f}" width="{max(1.0, bar_w - 1):.1f}" height="{h:.1f}" fill="{colours[code]}">'
                f"<title>{when} {escape(code)}: {count}</title></rect>"
            )
    labels = min(8, n)
    for k in range(labels + 1):
        i = round(k * n / labels) if labels else 0
        x = LEFT + i * bar_w
        when = timezone.localtime(data.start + data.bucket * i).strftime("%H:%M")
        anchor = "end" if k == labels else "start" if k == 0 else "middle"
        parts.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 14}" text-anchor="{anchor}" fill="#374151">{when}</text>')
    parts.append(
        f'<text x="{LEFT}" y="{TOP + plot_h + 30}" fill="#6b7280">system errors per {escape(unit)} (UTC); '
        f"shaded: the incident</text>"
    )
    x = LEFT + 330
    for code in data.codes:
        parts.append(f'<rect x="{x}" y="{TOP + plot_h + 21}" width="10" height="10" fill="{colours[code]}"/>')
        parts.append(f'<text x="{x + 14}" y="{TOP + plot_h + 30}" fill="#111827">{escape(code)}</text>')
        x += 80
    if not data.total:
        parts.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" fill="#6b7280">'
            "no system error in this span</text>"
        )
    parts.append("</svg>")
    # Every value above is a number, a fixed colour or escaped.
    return mark_safe("".join(parts))
