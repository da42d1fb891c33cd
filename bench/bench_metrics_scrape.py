"""Scrape cost of /metrics on a large executions table (issue 5: target under 200 ms).

    .venv/bin/python bench/bench_metrics_scrape.py [--sizes 10000,1000000] [--recent 2000]
        [--scrapes 30] [--database-url postgres://postgres@127.0.0.1:5432/conveyor_bench]

Creates (or reuses) a dedicated PostgreSQL database (``conveyor_bench`` by default: never
the test or the application database), migrates it, and for each size fills
``executions_execution`` with ``INSERT ... SELECT generate_series`` (a 1,000,000-run table
loads in well under a minute), then ``VACUUM ANALYZE`` and times the whole /metrics view
(every database collector, text rendering; queue depth off: it is SQS, cached, not the
database). Every size gets the same recent traffic (``--recent`` runs finished within the
metrics window, 400 in flight) and the rest as 90 days of history, so the ratio between
sizes shows what the table's size alone costs: a collector that scanned the table would
grow with it, one that reads through the indexes does not. Prints the figures, the
ratio, and the query plans at the largest size.
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

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/conveyor_bench"
WORKFLOWS = 20
IN_FLIGHT = {S.PENDING: 300, S.RUNNING: 100}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("CONVEYOR_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated table sizes (runs)")
    parser.add_argument("--recent", type=int, default=2000, help="runs finished within the metrics window")
    parser.add_argument("--scrapes", type=int, default=30, help="timed scrapes per size")
    return parser.parse_args()


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1") or name.startswith("test_"):
        raise SystemExit(f"refusing to fill database {name!r}: give the benchmark its own (e.g. conveyor_bench)")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "conveyor-bench-secret-key-0123456789abcdef0123456789")
    os.environ.setdefault("CONVEYOR_MESSAGE_SIGNING_KEY", "conveyor-bench-signing-key-0123456789")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------

# One expression per column, over g (1..n, from generate_series), r = mod(g, 100) (the status
# mix: 80% success, 10% error, 5% system_error, 3% cancelled, 2% skipped) and the flags
# recent (within the window) / flight (still in progress).
STATUS = f"""CASE WHEN flight THEN (CASE WHEN mod(g, 4) = 0 THEN '{S.RUNNING}' ELSE '{S.PENDING}' END)
    WHEN r < 80 THEN '{S.SUCCESS}' WHEN r < 90 THEN '{S.ERROR}' WHEN r < 95 THEN '{S.SYSTEM_ERROR}'
    WHEN r < 98 THEN '{S.CANCELLED}' ELSE '{S.SKIPPED}' END"""
ERROR_TYPE = """CASE WHEN flight THEN '' WHEN r >= 80 AND r < 87 THEN 'user' WHEN r >= 87 AND r < 90 THEN 'external'
    WHEN r >= 90 AND r < 95 THEN 'system' ELSE '' END"""
CODES = "(ARRAY['P-0003','P-0005','C-0002','C-0001','E-0001','N-0001','C-0004','P-0001'])"
CATEGORIES = (
    "(ARRAY['infrastructure','infrastructure','database','workflow_engine','workflow_engine','network_rpc','auth',"
    "'infrastructure'])"
)
FINISHED_AT = """CASE WHEN flight THEN NULL
    WHEN recent THEN now() - random() * interval '55 minutes'
    ELSE now() - interval '1 hour' - random() * interval '89 days' END"""
COLUMNS = {
    "id": "gen_random_uuid()",
    "workflow_id": f"(%(workflows)s::bigint[])[1 + mod(g, {WORKFLOWS})]",
    "organization_id": "%(org)s",
    "workflow_version": "1",
    "trigger_type": "(ARRAY['schedule','block','event','manual'])[1 + mod(g, 4)]",
    "dispatch_key": "NULL",
    "status": STATUS,
    "status_actor": "'runtime'",
    "error_type": ERROR_TYPE,
    "error_category": f"""CASE WHEN flight THEN '' WHEN r >= 80 AND r < 87 THEN 'workflow'
        WHEN r >= 87 AND r < 90 THEN 'external_service' WHEN r >= 90 AND r < 95 THEN {CATEGORIES}[1 + mod(g, 8)]
        ELSE '' END""",
    "error_code": f"CASE WHEN NOT flight AND r >= 90 AND r < 95 THEN {CODES}[1 + mod(g, 8)] ELSE '' END",
    "error_message": "CASE WHEN NOT flight AND r >= 80 AND r < 95 THEN 'benchmark failure' ELSE '' END",
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
    "queued_at": "now() - random() * interval '10 minutes'",
    "started_at": "NULL",
    "heartbeat_at": "NULL",
    "deadline_at": "NULL",
    "duration_ms": "CASE WHEN flight THEN NULL ELSE 1500 END",
    "steps_total": "1",
    "steps_started": "0",
    "steps_succeeded": "0",
    "steps_failed": "0",
}


def load(n: int, recent: int) -> float:
    """Empty the table and fill it with *n* runs; returns the seconds it took."""
    from django.db import connection

    from executions.models import Execution, Step, Transition
    from tenancy.models import Organization
    from tests.factories import make_org
    from workflows.models import Workflow

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for model in (Step, Transition):
            cursor.execute(f"TRUNCATE {model._meta.db_table}")
        cursor.execute(f"TRUNCATE {Execution._meta.db_table} CASCADE")
    Workflow.objects.all().delete()  # the previous size's (this database is the benchmark's own)
    Organization.objects.all().delete()
    org = make_org(f"bench-{os.getpid()}-{n}")
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
    flight = sum(IN_FLIGHT.values())
    sql = (
        f"INSERT INTO {Execution._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} FROM ("
        "  SELECT g, mod(g, 100) AS r, g <= %(flight)s AS flight, g > %(flight)s AND g <= %(recent_end)s AS recent"
        "  FROM generate_series(1, %(n)s) AS g"
        ") AS rows"
    )
    params.update(n=n, flight=flight, recent_end=flight + recent)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {Execution._meta.db_table}")
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------


def scrape() -> tuple[float, str]:
    from django.test import RequestFactory

    from observability.views import metrics

    request = RequestFactory().get("/metrics")
    started = time.perf_counter()
    response = metrics(request)
    took = time.perf_counter() - started
    assert response.status_code == 200
    return took, response.content.decode()


def measure(scrapes: int) -> dict:
    from observability.scrape import matching, value

    for _ in range(3):
        scrape()  # warm: connection, caches, plans
    timings, text = [], ""
    for _ in range(scrapes):
        took, text = scrape()
        timings.append(took * 1000)
    timings.sort()
    parts = {s.labels["part"]: s.value * 1000 for s in matching(text, "conveyor_metrics_collector_duration_seconds")}
    assert value(text, "conveyor_metrics_collector_up") == len(parts), "a collector part failed"
    return {
        "median_ms": statistics.median(timings),
        "p95_ms": timings[min(len(timings) - 1, int(len(timings) * 0.95))],
        "min_ms": timings[0],
        "parts_ms": parts,
        "in_window": value(text, "conveyor_executions"),
        "system_errors": value(text, "conveyor_system_errors_by_category"),
        "in_flight": value(text, "conveyor_in_flight_runs"),
    }


def explain() -> None:
    from datetime import timedelta

    from django.db.models import Count
    from django.utils import timezone

    from executions.models import Execution
    from failures.catalogue import SYSTEM_CATEGORIES
    from failures.statuses import IN_PROGRESS
    from observability.collectors import failed_in_window, finished_in_window
    from tenancy.models import Organization

    since = timezone.now() - timedelta(hours=1)
    queries = {
        "conveyor_executions": finished_in_window(since).values_list("status", "error_type").annotate(n=Count("*")),
        "conveyor_system_errors_by_category": failed_in_window(since)
        .filter(error_category__in=sorted(SYSTEM_CATEGORIES))
        .values_list("error_category", "error_code")
        .annotate(n=Count("*")),
        "conveyor_workflow_errors": failed_in_window(since)
        .filter(organization_id__in=list(Organization.objects.values_list("pk", flat=True)))
        .values_list("workflow_id", "status")
        .annotate(n=Count("*")),
        "conveyor_in_flight_runs": Execution.objects.filter(status__in=sorted(IN_PROGRESS))
        .values_list("status")
        .annotate(n=Count("*")),
    }
    for name, queryset in queries.items():
        plan = queryset.order_by().explain(analyze=True)
        print(f"\n-- {name}\n{plan}")


def main() -> None:
    args = parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.conf import settings

    settings.METRICS_QUEUES = []  # SQS is not what this measures (cached, short timeout)
    settings.METRICS_WINDOW_S = 3600
    results = {}
    for n in sizes:
        loaded = load(n, args.recent)
        from tenancy.models import Organization

        settings.METRICS_MANAGED_ORGS = list(Organization.objects.values_list("slug", flat=True))
        results[n] = measure(args.scrapes)
        r = results[n]
        print(
            f"{n:>9,} runs (loaded in {loaded:.1f} s): scrape median {r['median_ms']:.1f} ms, "
            f"p95 {r['p95_ms']:.1f} ms, min {r['min_ms']:.1f} ms; in window {r['in_window']:.0f}, "
            f"system errors {r['system_errors']:.0f}, in flight {r['in_flight']:.0f}; "
            f"parts (ms) {', '.join(f'{k} {v:.1f}' for k, v in r['parts_ms'].items())}"
        )
    if len(sizes) > 1:
        small, large = results[min(sizes)], results[max(sizes)]
        ratio = large["median_ms"] / small["median_ms"]
        print(
            f"\n{max(sizes):,} vs {min(sizes):,} runs: {large['median_ms']:.1f} ms vs {small['median_ms']:.1f} ms "
            f"(median), ratio {ratio:.2f}; target < 200 ms: {'met' if large['p95_ms'] < 200 else 'NOT met'}"
        )
    explain()


if __name__ == "__main__":
    main()
