"""The runs list at scale: the admin's runs list and the API's, with 1,000,000 runs against
the same views with 10,000 runs, measured in the same run (issue 6, DESIGN.md §7).

    .venv/bin/python bench/bench_runs_list.py              # 1,000,000 vs 10,000 runs
    .venv/bin/python bench/bench_runs_list.py --reload     # drop and re-insert the runs
    .venv/bin/python bench/bench_runs_list.py --runs 200000 --repeat 5

Two dedicated PostgreSQL databases, `<prefix>_large` and `<prefix>_small` (default prefix
conveyor_bench_ui), hold the same shape scaled: 10 organizations x 10 workflows, one busy
workflow (the measured one, a fifth of all runs, in the measured organization) and the
rest spread evenly, runs over 30 days with realistic statuses (85% success, 8% error, 3%
system_error with catalogue codes, cancelled, skipped, a few in progress), inserted with
INSERT ... SELECT generate_series and analyzed. The busy workflow makes every filtered
view fill its page at both sizes, so the two figures compare the same work (a page of
rows) on a table 100 times larger. The databases are kept between runs (--reload
rebuilds them).

Each view is timed server side, in-process, through Django's test client (middleware,
authentication, queries and template rendering; no network): the median of --repeat
requests after two warm-up requests, for one organization's operator (admin) or member
(API, token auth). Targets: every figure under 300 ms at the large size and at most 1.5x
its own small-size figure (the cost must stay flat as the table grows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
from failures.statuses import ExecutionStatus  # noqa: E402  (statuses have one home)

S = ExecutionStatus
SERVER_URL = os.environ.get("CONVEYOR_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
TARGET_MS = 300.0
TARGET_RATIO = 1.5
ORGS, WORKFLOWS_PER_ORG = 10, 10
BATCH = 250_000


# --- child phases (run with the bench database as Django's default) ---------------------------
def _django(database: str) -> None:
    sys.path.insert(0, str(PROJECT_ROOT))
    os.environ["DATABASE_URL"] = f"{SERVER_URL}/{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "conveyor-bench-secret-key-0123456789abcdef0123456789")
    os.environ.setdefault("CONVEYOR_MESSAGE_SIGNING_KEY", "conveyor-bench-signing-key-0123456789")
    os.environ.setdefault("CONVEYOR_LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _ensure_database(database: str) -> None:
    import psycopg

    with psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            conn.execute(f'CREATE DATABASE "{database}"')


def load(database: str, runs: int, reload: bool) -> None:
    _ensure_database(database)
    _django(database)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from executions.models import Execution
    from failures.catalogue import CATALOGUE
    from tenancy.models import Member, Organization
    from workflows.models import Workflow

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'executions_execution'")
        estimate = cursor.fetchone()[0]
    if not reload and abs(estimate - runs) <= runs * 0.02 and Workflow.objects.count() == ORGS * WORKFLOWS_PER_ORG:
        print(f"  {database}: {estimate:,} runs already loaded (--reload to rebuild)", flush=True)
        return

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE executions_transition, executions_step, executions_execution, executions_workflowversion,"
            " executions_workflow, executions_member, executions_organization, authtoken_token, auth_user CASCADE"
        )
    workflow_ids: list[int] = []
    org_ids: list[int] = []
    definition = {"steps": [{"id": "noop", "action": "transform", "config": {"output": {"ok": True}}}]}
    for o in range(ORGS):
        org = Organization.objects.create(name=f"Org {o}", slug=f"org-{o}")
        user = get_user_model().objects.create_user(username=f"member-{o}", password="bench")
        Member.objects.create(user=user, organization=org)
        for w in range(WORKFLOWS_PER_ORG):
            workflow = Workflow.objects.create(organization=org, name=f"workflow-{o}-{w}", definition=definition)
            workflow_ids.append(workflow.pk)
            org_ids.append(org.pk)
    get_user_model().objects.create_superuser(username="operator", password="bench", email="")

    codes = list(CATALOGUE)
    categories = [CATALOGUE[code].category for code in codes]
    span_s = 30 * 86400
    step_s = span_s / runs
    sql = """
        INSERT INTO executions_execution (
            id, workflow_id, organization_id, workflow_version, trigger_type, dispatch_key, status, status_actor,
            error_type, error_category, error_code, error_message, classifier_rule, input, output, attempt,
            runtime, claim_token, worker, created_at, queued_at, started_at, finished_at, heartbeat_at,
            deadline_at, duration_ms, steps_total, steps_started, steps_succeeded, steps_failed, rerun_of_id
        )
        SELECT
            gen_random_uuid(), (%(workflows)s::bigint[])[w + 1], (%(orgs)s::bigint[])[w + 1], 1,
            (ARRAY['schedule', 'manual', 'event', 'block'])[(g / 11) %% 4 + 1], NULL, status, '',
            CASE status WHEN %(st_error)s THEN (CASE WHEN (g / 7) %% 4 = 0 THEN 'external' ELSE 'user' END)
                        WHEN %(st_system_error)s THEN 'system' ELSE '' END,
            CASE status WHEN %(st_error)s THEN (CASE WHEN (g / 7) %% 4 = 0 THEN 'external_service' ELSE 'workflow' END)
                        WHEN %(st_system_error)s THEN (%(categories)s::text[])[c + 1] ELSE '' END,
            CASE status WHEN %(st_system_error)s THEN (%(codes)s::text[])[c + 1] ELSE '' END,
            CASE status WHEN %(st_error)s THEN 'step failed'
                        WHEN %(st_system_error)s THEN 'internal: worker lost' ELSE '' END,
            CASE status WHEN %(st_error)s THEN 'step-exception' WHEN %(st_system_error)s THEN 'explicit' ELSE '' END,
            '{}'::jsonb, NULL, 1, '', NULL, '', created, created, created + interval '1 second',
            CASE WHEN status IN (%(st_pending)s, %(st_running)s) THEN NULL ELSE created + interval '3 seconds' END,
            CASE WHEN status = %(st_running)s THEN now() ELSE NULL END,
            NULL, CASE WHEN status IN (%(st_pending)s, %(st_running)s) THEN NULL ELSE 3000 END, 1, 1, 1, 0, NULL
        FROM (
            SELECT g, CASE WHEN (g / 7) %% 5 = 0 THEN 0 ELSE (g / 100) %% %(n_workflows)s END AS w,
                   (g / 3) %% %(n_codes)s AS c,
                   now() - make_interval(secs => (%(runs)s - g) * %(step)s) AS created,
                   CASE WHEN g %% 1000 = 999 THEN %(st_running)s WHEN g %% 1000 = 998 THEN %(st_pending)s
                        WHEN g %% 100 < 85 THEN %(st_success)s WHEN g %% 100 < 93 THEN %(st_error)s
                        WHEN g %% 100 < 96 THEN %(st_system_error)s WHEN g %% 100 < 98 THEN %(st_cancelled)s
                        ELSE %(st_skipped)s END AS status
            FROM generate_series(%(start)s, %(stop)s) AS g
        ) AS runs
    """
    for start in range(0, runs, BATCH):
        stop = min(runs, start + BATCH) - 1
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                {
                    **{f"st_{status}": status for status in ExecutionStatus.values},
                    "workflows": workflow_ids,
                    "orgs": org_ids,
                    "codes": codes,
                    "categories": categories,
                    "n_workflows": len(workflow_ids),
                    "n_codes": len(codes),
                    "runs": runs,
                    "step": step_s,
                    "start": start,
                    "stop": stop,
                },
            )
        print(f"  {database}: {stop + 1:,} / {runs:,} runs inserted", flush=True)
    connection.close()
    import psycopg

    with psycopg.connect(f"{SERVER_URL}/{database}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE executions_execution")
    print(f"  {database}: {Execution.objects.count():,} runs loaded in {time.monotonic() - started:.0f}s", flush=True)


def measure(database: str, repeat: int) -> None:
    _django(database)
    from django.conf import settings
    from django.test import Client
    from django.urls import Resolver404, clear_url_caches, resolve
    from rest_framework.authtoken.models import Token

    from executions.models import Execution
    from tenancy.models import Member
    from workflows.models import Workflow

    try:
        resolve("/api/runs/")
    except Resolver404:
        settings.ROOT_URLCONF = "tests.urls_ui"  # until config/urls.py includes the API and pages
        clear_url_caches()

    member = Member.objects.select_related("user", "organization").get(user__username="member-0")
    org = member.organization
    workflow = Workflow.objects.filter(organization=org).order_by("pk").first()
    total = Execution.objects.filter(organization=org).count()
    some_run = Execution.objects.filter(workflow=workflow).order_by("created_at")[total // 20 : total // 20 + 1].get()

    admin = Client()
    admin.force_login(get_operator())
    token, _ = Token.objects.get_or_create(user=member.user)
    api = Client(HTTP_AUTHORIZATION=f"Token {token.key}")

    admin_list = "/admin/executions/execution/"
    cases = {
        "admin: unfiltered": (admin, admin_list),
        "admin: System Error": (admin, f"{admin_list}?status__exact={S.SYSTEM_ERROR}"),
        "admin: workflow + status": (admin, f"{admin_list}?workflow={workflow.pk}&status__exact={S.ERROR}"),
        "admin: search by run id": (admin, f"{admin_list}?q={some_run.pk}"),
        "api: unfiltered": (api, "/api/runs/"),
        "api: System Error": (api, f"/api/runs/?status={S.SYSTEM_ERROR}"),
        "api: workflow + status": (api, f"/api/runs/?workflow={workflow.pk}&status={S.ERROR}"),
        "api: run by id": (api, f"/api/runs/{some_run.pk}/"),
    }
    results: dict[str, dict] = {}
    for label, (client, url) in cases.items():
        timings = []
        for i in range(repeat + 2):
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{label}: {url} answered {response.status_code}")
            if i >= 2:
                timings.append(elapsed)
        rows = _rows(response)
        results[label] = {"median_ms": statistics.median(timings), "min_ms": min(timings), "rows": rows}
    table_rows = Execution.objects.count()
    print(json.dumps({"database": database, "runs": table_rows, "org_runs": total, "results": results}))


ADMIN_FILTERS = [
    "",
    f"status__exact={S.SYSTEM_ERROR}",
    f"status__exact={S.PENDING}",
    "error_type=external",
    "error_category=database",
    "error_category=infrastructure",
    "error_category=network_rpc",
    "error_category=auth",
    "error_code__exact=P-0003",
    "trigger_type__exact=block",
    "trigger_type__exact=retry",
    "workflow={workflow}",
    "workflow={workflow}&status__exact=error",
    "organization=org-3",
    "stuck=yes",
    "created=1h",
    "q={run}",
    "q=workflow-3-4",
]


def explain(database: str) -> None:
    """The plan of every admin filter's page query: which index serves it, and its cost."""
    _django(database)
    from django.contrib.admin.sites import site
    from django.db import connection
    from django.test import RequestFactory

    from executions.models import Execution
    from workflows.models import Workflow

    operator = get_operator()
    workflow = Workflow.objects.order_by("pk").first()
    run = Execution.objects.filter(workflow=workflow).order_by("created_at").first()
    model_admin = site._registry[Execution]
    print(f"{'admin filter':<42} {'ms':>7}  indexes used")
    for template in ADMIN_FILTERS:
        query = template.format(workflow=workflow.pk, run=run.pk)
        request = RequestFactory().get(f"/admin/executions/execution/?{query}")
        request.user = operator
        changelist = model_admin.get_changelist_instance(request)
        page = changelist.get_queryset(request)[:100]
        sql, params = page.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        indexes = _scans(plan[0]["Plan"])
        print(f"{query or '(none)':<42} {plan[0]['Execution Time']:>7.1f}  {', '.join(dict.fromkeys(indexes))}")


def _scans(node: dict) -> list[str]:
    """The indexes (or sequential scans) a plan reads, in plan order."""
    found = [node["Index Name"]] if node.get("Index Name") else []
    if node.get("Node Type") == "Seq Scan":
        found.append(f"SEQ SCAN {node.get('Relation Name')}")
    for child in node.get("Plans", []):
        found += _scans(child)
    return found


def get_operator():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="operator")


def _rows(response) -> int:
    if response.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        return len(body["results"]) if "results" in body else 1
    return response.content.decode().count('class="action-select"')  # one checkbox per listed run


# --- the parent: load both sizes, measure both, print the table --------------------------------
def _child(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, __file__, *args], cwd=PROJECT_ROOT, check=True, text=True, stdout=subprocess.PIPE
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs in the large database")
    parser.add_argument("--small", type=int, default=10_000, help="runs in the small database")
    parser.add_argument("--repeat", type=int, default=9, help="timed requests per view (after 2 warm-ups)")
    parser.add_argument("--db-prefix", default="conveyor_bench_ui")
    parser.add_argument("--reload", action="store_true", help="drop and re-insert the runs")
    parser.add_argument("--explain", action="store_true", help="print the plan of every admin filter (large size)")
    parser.add_argument("--phase", choices=["load", "measure", "explain"], help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "load":
        load(args.database, args.runs, args.reload)
        return 0
    if args.phase == "measure":
        measure(args.database, args.repeat)
        return 0
    if args.phase == "explain":
        explain(args.database)
        return 0

    sizes = {"small": args.small, "large": args.runs}
    figures: dict[str, dict] = {}
    for name, runs in sizes.items():
        database = f"{args.db_prefix}_{name}"
        print(f"loading {runs:,} runs into {database}", flush=True)
        load_args = ["--phase", "load", "--database", database, "--runs", str(runs)]
        subprocess.run([sys.executable, __file__, *load_args, *(["--reload"] if args.reload else [])], check=True)
    # Measured one after the other, in the same run, each in a fresh process.
    for name in sizes:
        database = f"{args.db_prefix}_{name}"
        out = _child("--phase", "measure", "--database", database, "--repeat", str(args.repeat)).stdout
        figures[name] = json.loads(out.strip().splitlines()[-1])

    small, large = figures["small"], figures["large"]
    print()
    print(
        f"runs list, server side (median of {args.repeat}): {small['runs']:,} runs ({small['org_runs']:,} in the "
        f"organization) vs {large['runs']:,} runs ({large['org_runs']:,} in the organization)"
    )
    header = f"{'view':<28} {'10k-size ms':>12} {'1M-size ms':>12} {'ratio':>7} {'rows':>6}  verdict"
    print(header)
    print("-" * len(header))
    failed = 0
    for label, big in large["results"].items():
        little = small["results"][label]
        ratio = big["median_ms"] / little["median_ms"] if little["median_ms"] else float("inf")
        ok = big["median_ms"] < TARGET_MS and ratio <= TARGET_RATIO
        failed += not ok
        verdict = "ok" if ok else f"MISSED (< {TARGET_MS:.0f} ms and <= {TARGET_RATIO}x)"
        print(
            f"{label:<28} {little['median_ms']:>12.1f} {big['median_ms']:>12.1f} {ratio:>6.2f}x {big['rows']:>6}  "
            f"{verdict}"
        )
    print()
    print("all targets met" if not failed else f"{failed} target(s) missed")
    if args.explain:
        print()
        print(_child("--phase", "explain", "--database", f"{args.db_prefix}_large").stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
