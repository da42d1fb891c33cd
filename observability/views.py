"""/metrics on the web process: the process metrics (django-prometheus's request and
database metrics, the pipeline's counters incremented by this process) plus the project's
database and queue collectors.

With PROMETHEUS_MULTIPROC_DIR set (several web processes on one host, e.g. gunicorn
workers), the process metrics are the merge of that directory, as prometheus_client's
multiprocess mode prescribes; without it, this process's own registry.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

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
