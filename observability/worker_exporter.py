"""A worker's own metrics exporter (docs/decisions/0005-worker-metrics.md).

prometheus_client's multiprocess mode merges the files of processes on one host only, so
each worker serves its own metrics over HTTP and Prometheus scrapes every worker: when
CONVEYOR_WORKER_METRICS_PORT is set, the worker's main process starts an exporter on it
once the worker is ready. A prefork worker's tasks run in its pool processes, so the
worker runs with its own PROMETHEUS_MULTIPROC_DIR (one directory per worker, wiped before
the worker starts) and the exporter serves the merge of that directory; a solo or
threads worker without the directory serves its own registry.
"""

from __future__ import annotations

import logging
import os

from celery.signals import worker_process_shutdown, worker_ready
from prometheus_client import start_http_server

from observability import conf

logger = logging.getLogger("conveyor.metrics")
_started: dict[str, object] = {}


@worker_ready.connect(dispatch_uid="observability.worker_exporter.start")
def start_worker_exporter(sender=None, **kwargs) -> None:
    port = int(conf.get("WORKER_METRICS_PORT") or 0)
    if not port or "server" in _started:
        return
    from observability.views import multiprocess_dir, process_registry

    addr = conf.get("WORKER_METRICS_ADDR")
    try:
        server, _thread = start_http_server(port, addr=addr, registry=process_registry())
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


@worker_process_shutdown.connect(dispatch_uid="observability.worker_exporter.mark_dead")
def mark_pool_process_dead(pid=None, **kwargs) -> None:
    """A pool process that exits leaves its counters in the directory (they stay in the
    sum) but its live gauges must go."""
    from observability.views import multiprocess_dir

    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
