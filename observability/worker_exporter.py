"""A worker's own metrics exporter (docs/decisions/0005-worker-metrics.md).

prometheus_client's multiprocess mode merges the files of processes on one host only, so
each worker serves its own metrics over HTTP and Prometheus scrapes every worker: when
CONVEYOR_WORKER_METRICS_PORT is set, the worker's main process starts an exporter on it
once the worker is ready. A prefork worker's tasks run in its pool processes, so the
worker runs with its own PROMETHEUS_MULTIPROC_DIR (one directory per worker, wiped before
the worker starts) and the exporter serves the merge of that directory; a solo or
threads worker without the directory serves its own registry.

Beside the metrics it answers the consumer's probes (messaging.liveness): `/healthz`
(503 only when the consumer is stalled) and `/readyz` (503 unless every queue receives).
"""

from __future__ import annotations

import logging
import os
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from celery.signals import worker_process_shutdown, worker_ready
from django.conf import settings
from prometheus_client import make_wsgi_app, multiprocess
from prometheus_client.exposition import ThreadingWSGIServer

from messaging.liveness import PROBE_PATHS, probe
from observability.views import multiprocess_dir, process_registry

logger = logging.getLogger("conveyor.metrics")
_started: dict[str, object] = {}


@worker_ready.connect(dispatch_uid="observability.worker_exporter.start")
def start_worker_exporter(sender=None, **kwargs) -> None:
    port = int(settings.WORKER_METRICS_PORT or 0)
    if not port or "server" in _started:
        return

    addr = settings.WORKER_METRICS_ADDR
    try:
        server = serve(addr, port, process_registry())
    except OSError:
        logger.exception(
            "worker metrics exporter could not listen", extra={"event": "worker_exporter_failed", "port": port}
        )
        return
    _started["server"] = server
    logger.info(
        "worker metrics exporter listening on %s:%s",
        addr,
        port,
        extra={"event": "worker_exporter_started", "port": port, "multiprocess_dir": multiprocess_dir() or ""},
    )


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # a scrape every few seconds is not news
        pass


def exporter_app(registry):
    """The worker's exporter: the probes on their paths, the metrics on every other."""

    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in PROBE_PATHS:
            status, body = probe(path)
            reason = "OK" if status == 200 else "Service Unavailable"
            start_response(f"{status} {reason}", [("Content-Type", "application/json")])
            return [body]
        return metrics_app(environ, start_response)

    return app


def serve(addr: str, port: int, registry):
    server = make_server(addr, port, exporter_app(registry), ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="conveyor-worker-exporter", daemon=True).start()
    return server


@worker_process_shutdown.connect(dispatch_uid="observability.worker_exporter.mark_dead")
def mark_pool_process_dead(pid=None, **kwargs) -> None:
    """A pool process that exits leaves its counters in the directory (they stay in the
    sum) but its live gauges must go."""

    if multiprocess_dir():
        multiprocess.mark_process_dead(pid or os.getpid())
