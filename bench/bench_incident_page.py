"""Incidents at scale: the detector's passes and the admin's incident page with 1,000,000
runs in PostgreSQL (issue 14).

    .venv/bin/python bench/bench_incident_page.py            # 1,000,000 runs
    .venv/bin/python bench/bench_incident_page.py --runs 200000 --repeat 5

The database `conveyor_bench_incidents` (kept between runs; --reload rebuilds it) holds
the runs list benchmark's shape (bench/bench_runs_list.py: 30 days, 85% success, 3%
system_error with catalogue codes...). On top of it, each run inserts an outage: 2,000
`system_error` MS-0001 runs over the last 20 minutes across every organization, sets the
detector's watermark 30 minutes back (its last pass before the maintenance queue
stopped), then times:

- the catch-up pass after the restore (reads the outage, opens one incident, links 2,000 runs);
- a steady pass (nothing new since the watermark), median of --repeat;
- the admin's incident page (chart, counts, recovery counts), the incidents list, the runs
  list filtered by the incident, the recovery confirmation, and the API's run detail of a
  run in it (the customer's notice): in-process through Django's test client, median of
  --repeat after two warm-ups. Target: every page under 300 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench.bench_runs_list import get_operator, load  # noqa: E402
from failures.statuses import ExecutionStatus  # noqa: E402

DATABASE = "conveyor_bench_incidents"
OUTAGE_RUNS = 2000
TARGET_MS = 300.0


def _outage(connection) -> None:
    """2,000 MS-0001 runs over the last 20 minutes, spread over every workflow."""
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE incidents_incidentnote, incidents_incidentrun, incidents_incident, incidents_detectorstate"
        )
        cursor.execute("DELETE FROM executions_execution WHERE classifier_rule = 'bench-outage'")
        cursor.execute(
            """
            INSERT INTO executions_execution (
                id, workflow_id, organization_id, workflow_version, trigger_type, status, status_actor,
                error_type, error_category, error_code, error_message, classifier_rule, input, attempt, runtime,
                worker, created_at, queued_at, finished_at, duration_ms, steps_total, steps_started,
                steps_succeeded, steps_failed
            )
            SELECT gen_random_uuid(), w.id, w.organization_id, 1, 'manual', %(system_error)s, 'producer',
                   'system', 'infrastructure', 'MS-0001', 'SendMessage failed: bench', 'bench-outage', '{}'::jsonb,
                   1, '', '', t, t, t, 0, 1, 0, 0, 0
            FROM generate_series(1, %(n)s) AS g
            JOIN LATERAL (SELECT now() - make_interval(secs => 1200.0 * g / %(n)s) AS t) AS times ON true
            JOIN LATERAL (
                SELECT id, organization_id FROM executions_workflow ORDER BY id OFFSET (g %% 100) LIMIT 1
            ) AS w ON true
            """,
            {"n": OUTAGE_RUNS, "system_error": ExecutionStatus.SYSTEM_ERROR.value},
        )
        cursor.execute("ANALYZE executions_execution")


def _timed(fn, repeat: int) -> tuple[float, object]:
    timings, result = [], None
    for i in range(repeat + 2):
        started = time.perf_counter()
        result = fn()
        if i >= 2:
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), result


def measure(repeat: int) -> dict:
    from datetime import timedelta

    from django.db import connection
    from django.test import Client
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from executions.models import Execution
    from incidents.detection import detect
    from incidents.models import DetectorState, Incident
    from tenancy.models import Member

    _outage(connection)
    DetectorState.objects.create(name="detector", watermark=timezone.now() - timedelta(minutes=30))
    started = time.perf_counter()
    report = detect()
    catch_up_ms = (time.perf_counter() - started) * 1000
    incident = Incident.objects.get(pk=report.opened[0])
    steady_ms, steady = _timed(detect, repeat)

    admin = Client()
    admin.force_login(get_operator())
    run = Execution.objects.filter(incident_link__incident=incident).order_by("created_at").first()
    member = Member.objects.select_related("user").filter(organization_id=run.organization_id).first()
    token, _ = Token.objects.get_or_create(user=member.user)
    api = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    base = "/admin/incidents/incident/"
    pages = {
        "admin: incident page": (admin, f"{base}{incident.pk}/change/"),
        "admin: incidents list": (admin, base),
        "admin: runs of the incident": (admin, f"/admin/executions/execution/?incident={incident.pk}"),
        "admin: recovery confirmation": (admin, f"{base}{incident.pk}/rerun/"),
        "api: run detail with its notice": (api, f"/api/runs/{run.pk}/"),
    }
    results = {}
    for label, (client, url) in pages.items():
        ms, response = _timed(lambda c=client, u=url: c.get(u), repeat)
        if response.status_code != 200:
            raise SystemExit(f"{label}: {url} answered {response.status_code}")
        results[label] = round(ms, 1)
    return {
        "runs": Execution.objects.count(),
        "incident_runs": incident.runs_count,
        "catch_up_pass_ms": round(catch_up_ms, 1),
        "steady_pass_ms": round(steady_ms, 1),
        "steady_read": steady.read,
        "pages_ms": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--reload", action="store_true")
    args = parser.parse_args()
    load(DATABASE, args.runs, args.reload)
    figures = measure(args.repeat)
    print(json.dumps(figures, indent=2))
    print(f"\n{figures['runs']:,} runs; an outage of {figures['incident_runs']:,} runs")
    print(f"  detector, catch-up pass after the restore: {figures['catch_up_pass_ms']:8.1f} ms")
    print(f"  detector, steady pass:                     {figures['steady_pass_ms']:8.1f} ms")
    slow = []
    for label, ms in figures["pages_ms"].items():
        print(f"  {label:34s} {ms:8.1f} ms")
        if ms > TARGET_MS:
            slow.append(label)
    if slow:
        print(f"over {TARGET_MS:.0f} ms: {', '.join(slow)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
