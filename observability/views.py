"""/metrics on the web process: the process metrics (django-prometheus's request and
database metrics, the pipeline's counters incremented by this process) plus the project's
database and queue collectors.

With PROMETHEUS_MULTIPROC_DIR set (several web processes on one host, e.g. gunicorn
workers), the process metrics are the merge of that directory, as prometheus_client's
multiprocess mode prescribes; without it, this process's own registry.
"""

from __future__ import annotations

import os

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from observability import charts
from observability import health as health_readings
from observability.collectors import DatabaseCollector, QueueDepthCollector


class _Forward(Collector):
    """Everything another registry holds (the process-global one)."""

    def __init__(self, registry: CollectorRegistry):
        self._registry = registry

    def collect(self):
        return self._registry.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def process_registry() -> CollectorRegistry:
    """The counters and histograms of the processes this one speaks for."""
    path = multiprocess_dir()
    if path:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
        return registry
    return REGISTRY


def build_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(process_registry()))
    registry.register(DatabaseCollector())
    registry.register(QueueDepthCollector())
    return registry


def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(build_registry()), content_type=CONTENT_TYPE_LATEST)


@staff_member_required
def health(request: HttpRequest) -> HttpResponse:
    """The health page (staff only): SLI and error budget, system errors over 24 h, open
    incidents, queues, workers, the reaper and stuck runs (observability/health.py)."""
    from django.contrib import admin

    reading = health_readings.read(timezone.now())
    chart = reading.chart
    svg = charts.stacked_bars(
        chart.starts,
        [
            charts.Series(category or "uncategorised", health_readings.category_label(category), values)
            for category, values in chart.by_category.items()
        ],
        title="System errors per 15 minutes over the last 24 hours, by category",
        label_every=12,
    )
    context = {
        **admin.site.each_context(request),
        "title": "Platform health",
        "is_nav_sidebar_enabled": False,  # the page is wide, and the sidebar costs a render of every app
        "health": reading,
        "chart_svg": svg,
        "slo_window_days": health_readings.SLO_WINDOW.days,
        "sli_percent": _percent(reading.sli.ratio, 3),
        "budget_percent": _percent(reading.sli.budget_left, 1),
        "objective_percent": _percent(reading.sli.objective, 2),
        "oldest_pending_ages": {
            row.name: (reading.now - row.oldest_pending_at).total_seconds()
            for row in reading.queues
            if row.oldest_pending_at is not None
        },
    }
    return render(request, "observability/health.html", context)


def _percent(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f} %"
