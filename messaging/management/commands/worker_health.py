"""`manage.py worker_health`: is a worker's consumer receiving? (messaging.liveness)

    manage.py worker_health                         every worker, from the database
    manage.py worker_health --worker runs@host-1    one worker
    manage.py worker_health --url http://127.0.0.1:9101   probe one worker's exporter

Exit status: 0 healthy; 1 degraded (its receives fail: SQS unreachable, a missing queue);
2 stalled, gone (no liveness row refreshed lately) or unreachable. With `--liveness` only
2 fails the check (exit 1): what a systemd or Kubernetes liveness check wants, since
restarting a worker because SQS is down would only kill its runs.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from messaging.models import WorkerLiveness

EXIT = {"ok": 0, "degraded": 1, "stalled": 2, "gone": 2, "stopped": 2, "unreachable": 2}


class Command(BaseCommand):
    help = "Say whether workers' consumers receive (exit 0), fail to (1) or are stalled or gone (2)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", help="probe this worker exporter's /healthz instead of reading the database")
        parser.add_argument("--worker", action="append", default=[], help="only this worker node (repeatable)")
        parser.add_argument(
            "--max-age",
            type=float,
            default=None,
            help="a liveness row older than this many seconds means the worker is gone "
            "(default: three liveness intervals plus 5 s)",
        )
        parser.add_argument("--liveness", action="store_true", help="fail only when stalled or gone (a liveness probe)")

    def handle(self, *args, **options) -> None:
        verdicts = self._probe(options["url"]) if options["url"] else self._from_database(options)
        worst = max((EXIT[status] for status in verdicts.values()), default=2)
        if not verdicts:
            self.stderr.write("no worker has recorded its liveness")
        code = (1 if worst == 2 else 0) if options["liveness"] else worst
        if code:
            raise SystemExit(code)

    def _probe(self, url: str) -> dict[str, str]:
        target = url.rstrip("/") + "/healthz"
        try:
            with urllib.request.urlopen(target, timeout=5) as response:
                details = json.loads(response.read())
        except urllib.error.HTTPError as error:
            details = json.loads(error.read() or b"{}")
        except (OSError, ValueError) as exc:
            self.stdout.write(f"{url}: unreachable ({exc})")
            return {url: "unreachable"}
        status = details.get("status", "unreachable")
        self.stdout.write(f"{url}: {status}")
        for queue, state in sorted(details.get("queues", {}).items()):
            self.stdout.write(f"  {queue}: {_describe(state)}")
        return {url: status}

    def _from_database(self, options) -> dict[str, str]:
        max_age = options["max_age"] or 3 * settings.WORKER_LIVENESS_INTERVAL_S + 5
        rows = WorkerLiveness.objects.all()
        if options["worker"]:
            rows = rows.filter(node__in=options["worker"])
        now = timezone.now()
        verdicts = {}
        for row in rows.order_by("node"):
            age = (now - row.updated_at).total_seconds()
            status = row.status
            if status not in ("stopped",) and age > max_age:
                status = "gone"
            if status == "stopped" and not options["worker"]:
                continue  # a worker that shut down cleanly is no longer part of the fleet
            verdicts[row.node] = status
            self.stdout.write(f"{row.node} (pid {row.pid} on {row.hostname}): {status}, reported {age:.0f} s ago")
            for queue, state in sorted((row.details or {}).get("queues", {}).items()):
                self.stdout.write(f"  {queue}: {_describe(state)}")
        for node in options["worker"]:
            if node not in verdicts:
                verdicts[node] = "gone"
                self.stdout.write(f"{node}: gone (no liveness recorded)")
        return verdicts


def _describe(state: dict) -> str:
    if state.get("saturated"):
        return "busy (its pool is full)"
    text = f"{state.get('state')}, last receive {state.get('last_receive_at') or 'never'}"
    if state.get("failures_in_a_row"):
        text += f", {state['failures_in_a_row']} failed receives in a row ({state.get('last_failure')})"
    return text
