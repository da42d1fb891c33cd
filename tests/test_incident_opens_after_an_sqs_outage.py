"""End to end: an SQS cut through the loopback proxy produces one platform incident with
exactly the runs the outage failed, opened by the detector after the restore (the cut
stops the maintenance queue it runs on) and backdated to the first error.

The whole platform runs as production runs it (runs worker, maintenance worker, beat, web:
real processes). During the cut, runs triggered through the API cannot be sent: each is
`system_error` MS-0001 at once. The detector's beat messages cannot reach the maintenance
worker either; after the restore its next pass sees the errors, all in the window.
"""

from __future__ import annotations

import time

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from executions.models import Execution
from incidents.models import DetectorState, Incident, IncidentRun, OpenedBy
from tests.e2e import wait_for, wait_status
from tests.ui import member

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("long")]

CUT_RUNS = 4
ENV = {
    "CONVEYOR_INCIDENT_THRESHOLD": 3,
    "CONVEYOR_INCIDENT_WINDOW_S": 300,
    "CONVEYOR_INCIDENT_QUIET_S": 600,
    "CONVEYOR_INCIDENT_DETECT_S": 1,
    "CONVEYOR_CONSUMER_STALL_MARGIN_S": 4,
    "CONVEYOR_START_THRESHOLD_S": 120,
    "CONVEYOR_SQS_READ_TIMEOUT_S": 4,
    "CONVEYOR_DEFAULT_RUNTIME": "inline",
}


def detector_passed_since(moment) -> bool:
    state = DetectorState.objects.filter(name="detector").first()
    return bool(state and state.last_pass_at and state.last_pass_at > moment)


def test_an_sqs_cut_opens_one_incident_with_the_outages_runs_backdated_to_the_first(pipeline, sqs_proxy):
    user = member()
    token = Token.objects.create(user=user).key
    org = user.membership.organization
    platform = pipeline.platform(**ENV)
    workflow = pipeline.workflow(org=org, name="orders")

    status, body = platform.trigger(workflow, token)
    assert status == 202, body
    before = wait_status(body["run_id"], timeout=60)
    assert before.status == "success"
    wait_for(lambda: detector_passed_since(before.finished_at), timeout=60, message="the detector never ran")

    sqs_proxy.cut("refuse")
    failed = []
    for _ in range(CUT_RUNS):
        status, body = platform.trigger(workflow, token)
        assert status == 503, body  # not queued: the run is already system_error MS-0001
        failed.append(body["run_id"])
    time.sleep(3)  # beat's detection ticks fall in the cut: they cannot reach the worker
    assert not Incident.objects.exists()
    sqs_proxy.restore()
    restored_at = timezone.now()

    incident = wait_for(lambda: Incident.objects.first(), timeout=90, message="no incident after the restore")

    runs = Execution.objects.filter(pk__in=failed)
    assert {(r.status, r.error_code) for r in runs} == {("system_error", "MS-0001")}
    first_error = min(r.finished_at for r in runs)
    assert incident.start == first_error  # backdated: opened after the restore
    assert incident.opened_at >= restored_at > incident.start
    assert incident.opened_by == OpenedBy.AUTO and incident.categories == ["infrastructure"]
    assert incident.codes == ["MS-0001"]
    assert set(map(str, IncidentRun.objects.filter(incident=incident).values_list("execution_id", flat=True))) == set(
        failed
    )
    assert (incident.runs_count, incident.workflows_count, incident.organizations_count) == (CUT_RUNS, 1, 1)
    assert not IncidentRun.objects.filter(execution_id=before.pk).exists()
    assert platform.maintenance.wait_for_log("incident opened", timeout=30)  # logged just after the commit
    assert platform.all_running_unrestarted(), pipeline.processes.logs()
