"""The health page (/admin/health/) with 1,000,000 runs in PostgreSQL (issue 14: under
300 ms), against baselines measured in the same process.

    .venv/bin/python bench/bench_health_page.py [--runs 1000000] [--requests 20] [--keep]
        [--database-url postgres://postgres@127.0.0.1:5432/conveyor_bench_health]

Creates a dedicated database (``conveyor_bench_health``; never the test or the
application database), migrates it, fills ``executions_execution`` with
``INSERT ... SELECT generate_series`` (secondary indexes dropped first and built again
after): runs finished evenly over 31 days (85% success,
10% error, 0.3% system_error, cancelled, skipped), an outage of 3,000 system errors 6
hours ago (the chart's peak), 400 runs in flight of which 50 stuck pending; three
workers' liveness rows and a reaper sweep. ``VACUUM ANALYZE``, then the rollup's first
pass (30 days of hours from nothing: timed too, it is the maintenance task's worst case).

Times, each through Django's test client as a logged-in staff user (middleware,
session, queries, template; no network), after three warm-up requests, p50/p95 over
``--requests``:

- the health page (queue depth from a real moto SQS server, cached as /metrics caches it);
- the page's readings alone (``observability.health.read``: its queries, no template);
- the same page reading SQS on every request (``CONVEYOR_METRICS_QUEUE_CACHE_S=0``);
- the same page without the rollup (every run of the 30 days counted live: what the
  RunHour table saves);
- baselines: the admin runs changelist, and the naive 30-day ``COUNT ... GROUP BY status``.

Prints the figures, the ratios, and EXPLAIN ANALYZE of the page's database reads. Drops
the database at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from failures.statuses import ExecutionStatus as S  # noqa: E402  (statuses have one home)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/conveyor_bench_health"
WORKFLOWS = 20
OUTAGE = 3000  # system errors of one outage, 6 hours ago
FLIGHT = 400  # in progress: the first 50 stuck pending
STUCK = 50


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("CONVEYOR_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the database (default: dropped at the end)")
    parser.add_argument("--reuse", action="store_true", help="measure a database kept by --keep, without loading")
    return parser.parse_args()


def _admin_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1") or name.startswith("test_"):
        raise SystemExit(f"refusing to fill database {name!r}: give the benchmark its own (e.g. conveyor_bench_health)")
    return name, urlunsplit(parts._replace(path="/postgres"))


def create_database(url: str) -> None:
    import psycopg

    name, admin_url = _admin_url(url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    name, admin_url = _admin_url(url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "conveyor-bench-secret-key-0123456789abcdef0123456789")
    os.environ.setdefault("CONVEYOR_MESSAGE_SIGNING_KEY", "conveyor-bench-signing-key-0123456789")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


# --------------------------------------------------------------------------------------
# data: g in 1..n; r = mod(g, 1000) picks the status; the first FLIGHT rows are in flight,
# the next OUTAGE rows the outage's system errors, the rest finished over 31 days.
# --------------------------------------------------------------------------------------

STATUS = f"""CASE WHEN flight THEN (CASE WHEN g <= {STUCK} OR mod(g, 4) <> 0 THEN '{S.PENDING}' ELSE '{S.RUNNING}' END)
    WHEN outage THEN '{S.SYSTEM_ERROR}'
    WHEN r < 850 THEN '{S.SUCCESS}' WHEN r < 950 THEN '{S.ERROR}' WHEN r < 953 THEN '{S.SYSTEM_ERROR}'
    WHEN r < 980 THEN '{S.CANCELLED}' ELSE '{S.SKIPPED}' END"""
SYSTEM = "(outage OR (NOT flight AND r >= 950 AND r < 953))"
ERROR = "(NOT flight AND NOT outage AND r >= 850 AND r < 950)"
CODES = "(ARRAY['P-0003','P-0005','C-0002','C-0001','E-0001','N-0001','C-0004','P-0001'])"
CATEGORIES = (
    "(ARRAY['infrastructure','infrastructure','database','workflow_engine','workflow_engine','network_rpc','auth',"
    "'infrastructure'])"
)
FINISHED_AT = """CASE WHEN flight THEN NULL
    WHEN outage THEN now() - interval '6 hours' - random() * interval '40 minutes'
    ELSE now() - random() * interval '31 days' END"""
COLUMNS = {
    "id": "gen_random_uuid()",
    "workflow_id": f"(%(workflows)s::bigint[])[1 + mod(g, {WORKFLOWS})]",
    "organization_id": "%(org)s",
    "workflow_version": "1",
    "trigger_type": "(ARRAY['schedule','block','event','manual'])[1 + mod(g, 4)]",
    "dispatch_key": "NULL",
    "status": STATUS,
    "status_actor": "'runtime'",
    "error_type": f"CASE WHEN {SYSTEM} THEN 'system' WHEN {ERROR} THEN (CASE WHEN r < 920 THEN 'user' "
    "ELSE 'external' END) ELSE '' END",
    "error_category": f"CASE WHEN {SYSTEM} THEN {CATEGORIES}[1 + mod(g, 8)] WHEN {ERROR} THEN (CASE WHEN r < 920 "
    "THEN 'workflow' ELSE 'external_service' END) ELSE '' END",
    "error_code": f"CASE WHEN {SYSTEM} THEN {CODES}[1 + mod(g, 8)] ELSE '' END",
    "error_message": f"CASE WHEN {SYSTEM} OR {ERROR} THEN 'benchmark failure' ELSE '' END",
    "classifier_rule": "''",
    "input": "'{}'::jsonb",
    "output": "NULL",
    "attempt": "1",
    "rerun_of_id": "NULL",
    "runtime": "'inline'",
    "claim_token": "NULL",
    "worker": "''",
    "finished_at": FINISHED_AT,
    "created_at": f"COALESCE({FINISHED_AT}, now()) - interval '2 seconds'",
    "queued_at": f"CASE WHEN g <= {STUCK} THEN now() - interval '20 minutes' - random() * interval '10 minutes' "
    "ELSE now() - random() * interval '10 minutes' END",
    "started_at": "NULL",
    "heartbeat_at": "CASE WHEN flight THEN now() ELSE NULL END",
    "deadline_at": "NULL",
    "duration_ms": "CASE WHEN flight THEN NULL ELSE 1500 END",
    "steps_total": "1",
    "steps_started": "0",
    "steps_succeeded": "0",
    "steps_failed": "0",
}


def load(n: int) -> float:
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from executions.models import Execution
    from messaging.models import WorkerLiveness
    from reaper.models import Lease
    from reaper.sweep import LEASE_NAME
    from tests.factories import make_org
    from workflows.models import Workflow

    started = time.perf_counter()
    org = make_org("bench-health")
    workflows = [Workflow.objects.create(organization=org, name=f"bench-{i}", definition={"steps": [
        {"id": "noop", "action": "transform", "config": {"output": {}}}]}).pk for i in range(WORKFLOWS)]  # fmt: skip
    columns, expressions, params = [], [], {"workflows": workflows, "org": org.pk}
    for field in Execution._meta.concrete_fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.column in COLUMNS:
            expressions.append(COLUMNS[field.column])
        elif field.null:
            expressions.append("NULL")
        else:  # a column added since this benchmark was written: its model default
            key = f"default_{field.column}"
            params[key] = field.get_db_prep_save(field.get_default(), connection)
            expressions.append(f"%({key})s")
    sql = (
        f"INSERT INTO {Execution._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} FROM ("
        "  SELECT g, mod(g, 1000) AS r, g <= %(flight)s AS flight, g > %(flight)s AND g <= %(outage_end)s AS outage"
        "  FROM generate_series(1, %(n)s) AS g"
        ") AS rows"
    )
    params.update(n=n, flight=FLIGHT, outage_end=FLIGHT + OUTAGE)
    table = Execution._meta.db_table
    with connection.cursor() as cursor:
        # The secondary indexes are built once after the insert, not maintained row by row:
        # on a busy machine that is minutes instead of a quarter of an hour, and the same
        # indexes (their definitions are read back from pg_indexes).
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            [table],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(sql, params)
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute(f"VACUUM ANALYZE {table}")
    refresh_in_flight()
    now = timezone.now()
    for i, status in enumerate(("ok", "ok", "degraded")):
        WorkerLiveness.objects.create(
            node=f"runs-{i}@bench",
            status=status,
            details={"queues": {"runs": {"state": status, "last_receive_at": now.isoformat()}}},
            updated_at=now - timedelta(seconds=3),
        )
    Lease.objects.create(name=LEASE_NAME, last_finished_at=now - timedelta(seconds=20))
    return time.perf_counter() - started


def refresh_in_flight() -> None:
    """In-flight runs' times from now (the load takes minutes on a busy machine, a reused
    database hours): STUCK pending runs 20-30 minutes old, the rest queued within 10."""
    from django.db import connection

    from executions.models import Execution

    table = Execution._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET queued_at = now() - random() * interval '10 minutes', "
            f"heartbeat_at = CASE WHEN status = %s THEN now() END WHERE status IN (%s, %s)",
            [S.RUNNING, S.PENDING, S.RUNNING],
        )
        cursor.execute(
            f"UPDATE {table} SET queued_at = now() - interval '20 minutes' - random() * interval '10 minutes' "
            f"WHERE id IN (SELECT id FROM {table} WHERE status = %s ORDER BY id LIMIT %s)",
            [S.PENDING, STUCK],
        )


# --------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------


def timed(fn, requests: int) -> dict:
    for _ in range(3):
        fn()  # warm: connection, caches, plans
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "p50": statistics.median(timings),
        "p95": timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))],
        "min": timings[0],
    }


def get(client, path: str):
    def fetch():
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response

    return fetch


def naive_count():
    from datetime import timedelta

    from django.db.models import Count
    from django.utils import timezone

    from executions.models import Execution
    from failures.statuses import TERMINAL

    since = timezone.now() - timedelta(days=30)
    rows = (
        Execution.objects.filter(finished_at__gte=since, status__in=sorted(TERMINAL))
        .values_list("status")
        .annotate(n=Count("*"))
        .order_by()
    )
    return dict(rows)


def explain() -> None:
    from datetime import UTC, timedelta

    from django.db.models import Count, Sum
    from django.db.models.functions import TruncHour, TruncMinute
    from django.utils import timezone

    from executions import queries
    from executions.models import Execution
    from failures.statuses import TERMINAL
    from observability import health
    from observability.models import RunHour

    now = timezone.now()
    since = health.floor_hour(now - health.SLO_WINDOW)
    until = health.floor_hour(now)
    plans = {
        "SLI: latest rolled-up hour": RunHour.objects.filter(hour__gte=since).order_by("-hour").values("hour")[:1],
        "SLI: rolled-up hours": RunHour.objects.filter(hour__gte=since, hour__lt=until)
        .values_list("status")
        .annotate(n=Sum("runs")),
        "SLI: the live tail": Execution.objects.filter(finished_at__gte=until, status__in=sorted(TERMINAL))
        .values_list("status")
        .annotate(n=Count("*")),
        "chart: system errors per minute over 24 h": Execution.objects.filter(
            finished_at__gte=now - timedelta(hours=24), status=S.SYSTEM_ERROR
        )
        .annotate(minute=TruncMinute("finished_at", tzinfo=UTC))
        .values_list("minute", "error_category")
        .annotate(n=Count("*")),
        "oldest pending": Execution.objects.filter(status=S.PENDING, queued_at__isnull=False)
        .order_by("queued_at")
        .values_list("id", "queued_at")[:1],
        "stuck runs": Execution.objects.filter(queries.stuck(now)).order_by("queued_at")[:20],
        "baseline: naive 30-day count": Execution.objects.filter(
            finished_at__gte=now - timedelta(days=30), status__in=sorted(TERMINAL)
        )
        .values_list("status")
        .annotate(n=Count("*")),
        "rollup pass (maintenance task, 3 hours)": Execution.objects.filter(
            finished_at__gte=until - timedelta(hours=3), finished_at__lt=until, status__in=sorted(TERMINAL)
        )
        .annotate(hour=TruncHour("finished_at", tzinfo=UTC))
        .values_list("hour", "status")
        .annotate(n=Count("*")),
    }
    for name, queryset in plans.items():
        if name not in ("oldest pending", "stuck runs", "SLI: latest rolled-up hour"):
            queryset = queryset.order_by()
        print(f"\n-- {name}\n{queryset.explain(analyze=True)}")


def line(label: str, r: dict) -> str:
    return f"{label:<58} p50 {r['p50']:7.1f} ms   p95 {r['p95']:7.1f} ms   min {r['min']:7.1f} ms"


def main() -> None:
    args = parse_args()
    if not args.reuse:
        create_database(args.database_url)
    setup_django(args.database_url)
    try:
        run(args)
    finally:
        if not args.keep:
            drop_database(args.database_url)
            print(f"\n(database {urlsplit(args.database_url).path.lstrip('/')} dropped; --keep keeps it)")


def run(args: argparse.Namespace) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from observability import health
    from observability.collectors import QUEUE_DEPTHS
    from observability.models import RunHour
    from tests.harness.moto_server import MotoServer
    from tests.harness.sqs import SqsQueues, new_prefix

    if args.reuse:
        from executions.models import Execution

        refresh_in_flight()
        print(f"reusing {Execution.objects.count():,} runs")
        RunHour.objects.all().delete()
        get_user_model().objects.filter(username="bench-operator").delete()
    else:
        loaded = load(args.runs)
        print(f"loaded {args.runs:,} runs in {loaded:.1f} s")
    started = time.perf_counter()
    report = health.roll_up(timezone.now())
    print(f"rollup, first pass: {report.hours} hours from nothing in {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    health.roll_up(timezone.now())
    took = (time.perf_counter() - started) * 1000
    print(f"rollup, next pass (the last {health.ROLLUP_RECOMPUTE} again): {took:.0f} ms")

    staff = get_user_model().objects.create_superuser(username="bench-operator", password="x", email="")
    client = Client()
    client.force_login(staff)
    results = {}
    with MotoServer(log_path=Path("/tmp") / f"conveyor-bench-health-moto-{os.getpid()}.log") as moto:
        prefix = new_prefix()
        queues = SqsQueues(moto.url, prefix).create()
        for i in range(25):
            queues.send_raw("runs", f"bench-{i}")
        settings.SQS_ENDPOINT_URL, settings.QUEUE_PREFIX = moto.url, prefix
        QUEUE_DEPTHS.clear()
        page = client.get("/admin/health/").content.decode()
        assert 'data-queue="runs"' in page and ">25<" in page, "the page did not read the runs queue's depth"
        assert f"Stuck runs ({STUCK})" in page, "the stuck runs are not on the page"
        results["health page"] = timed(get(client, "/admin/health/"), args.requests)
        settings.METRICS_QUEUE_CACHE_S = 0
        results["health readings only (the page's queries, no template)"] = timed(
            lambda: health.read(timezone.now()), args.requests
        )
        results["health page, SQS read on every request"] = timed(get(client, "/admin/health/"), args.requests)
        settings.METRICS_QUEUE_CACHE_S = 15.0
        rolled = list(RunHour.objects.values_list("hour", "status", "runs"))
        RunHour.objects.all().delete()
        results["health page without the rollup (all counted live)"] = timed(
            get(client, "/admin/health/"), args.requests
        )
        RunHour.objects.bulk_create([RunHour(hour=h, status=s, runs=n) for h, s, n in rolled])
        results["baseline: admin index"] = timed(get(client, "/admin/"), args.requests)
        results["baseline: admin runs changelist"] = timed(get(client, "/admin/executions/execution/"), args.requests)
        results["baseline: naive 30-day COUNT ... GROUP BY status"] = timed(naive_count, args.requests)

    reading = health.sli(timezone.now())
    print(
        f"\nSLI {reading.ratio:.5f} over {reading.counted:,} counted runs ({reading.system_errors:,} system errors, "
        f"{reading.excluded:,} skipped/cancelled left out), budget left {reading.budget_left:.3f}; "
        f"chart: {health.system_errors_chart(timezone.now()).total:,} system errors in 24 h\n"
    )
    for label, r in results.items():
        print(line(label, r))
    page = results["health page"]
    base = {label.split(": ", 1)[1]: r["p50"] for label, r in results.items() if label.startswith("baseline")}
    unrolled = results["health page without the rollup (all counted live)"]["p50"]
    print(
        "\nratios (p50): "
        + "; ".join(f"page / {label} {page['p50'] / p50:.2f}" for label, p50 in base.items())
        + f"; page without the rollup / page {unrolled / page['p50']:.2f}"
    )
    print(f"target: p95 under 300 ms at {args.runs:,} runs: {'met' if page['p95'] < 300 else 'NOT met'}")
    explain()


if __name__ == "__main__":
    main()
