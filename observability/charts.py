"""A small server-rendered SVG chart: stacked bars over time (no JavaScript, no CDN).

The health page draws system errors per 15 minutes by category with it; the markup is
plain SVG 1.1 with a <title> per bar segment, so a browser shows the figures on hover.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from math import ceil, log10

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Categories keep one colour everywhere (the palette is colour-blind safe: Okabe-Ito).
PALETTE = ("#E69F00", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


@dataclass(frozen=True)
class Series:
    name: str
    label: str
    values: Sequence[int]


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at least *value* (an axis' top)."""
    if value <= 1:
        return 1
    power = 10 ** int(log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def stacked_bars(
    starts: Sequence[datetime],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 960,
    height: int = 220,
    label_every: int = 12,
) -> SafeString:
    """One bar per start (a bucket), one stacked segment per series with a value there."""
    left, right, top, bottom = 40, 10, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(starts))
    totals = [sum(s.values[i] for s in series) for i in range(len(starts))]
    y_max = nice_ceiling(max(totals, default=0))
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.8)
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cv-chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in (0, y_max // 2 if y_max >= 2 else None, y_max):
        if tick is None:
            continue
        y = top + plot_h - plot_h * tick / y_max
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{tick}</text>')
    for i, start in enumerate(starts):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for index, s in enumerate(series):
            value = s.values[i]
            if not value:
                continue
            h = plot_h * value / y_max
            y -= h
            colour = PALETTE[index % len(PALETTE)]
            tip = f"{start:%H:%M} UTC: {value} {s.label}"
            parts.append(
                f'<rect class="cv-bar" data-series="{escape(s.name)}" data-value="{value}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}"><title>{escape(tip)}</title></rect>'
            )
        if i % label_every == 0:
            parts.append(f'<text x="{left + i * slot:.1f}" y="{top + plot_h + 14}" fill="#555">{start:%H:%M}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#888"/>')
    legend_x = left
    for index, s in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        label = f"{s.label} ({sum(s.values)})"
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - 5}" fill="#333">{escape(label)}</text>')
        legend_x += 24 + ceil(len(label) * 6.5)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text is escaped above
