"""Queues that vanish come back: with the SQS server restarted and every queue gone, the
workers, beat and the web process create them again (runs, maintenance, dead-letter, with
the configured visibility timeout) and go on, with no process restarted and no
`Unrecoverable error`. With CONVEYOR_SQS_CREATE_QUEUES=0 a missing queue is one clear
error naming the queue and the setting: nothing exits, a run that cannot be queued is
MS-0001, and the platform goes on once someone creates the queues."""

from __future__ import annotations

import time

import pytest
from rest_framework.authtoken.models import Token

from executions.models import Execution
from tests.e2e import wait_for, wait_status
from tests.harness.moto_server import MotoServer
from tests.harness.sqs import QUEUE_NAMES, SqsQueues
from tests.test_pipeline_survives_broker_outages import OUTAGE_ENV, RECOVERY_BUDGET_S, reaper_swept_since
from tests.ui import member

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sqs_servers(sqs_proxy, tmp_path):
    """A moto of this test's own behind the proxy, and a way to restart it empty."""
    servers = [MotoServer(log_path=tmp_path / "moto-0.log").start()]
    sqs_proxy.retarget("127.0.0.1", servers[0].port)

    def restart() -> MotoServer:
        servers[-1].stop()
        fresh = MotoServer(log_path=tmp_path / f"moto-{len(servers)}.log").start()
        servers.append(fresh)
        sqs_proxy.retarget("127.0.0.1", fresh.port)
        return fresh

    yield servers[0], restart
    for server in servers:
        server.stop()


def existing_queues(server: MotoServer, prefix: str) -> dict[str, str]:
    """Queue name (prefix-less) -> its VisibilityTimeout, for the platform's queues on *server*."""
    queues = SqsQueues(server.url, prefix)
    found = {}
    for url in queues.client.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
        name = url.rsplit("/", 1)[1][len(prefix) :]
        found[name] = queues.client.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])[
            "Attributes"
        ]["VisibilityTimeout"]
    return found


def trigger_and_wait(platform, workflow, token, budget):
    started = time.monotonic()
    status, body = platform.trigger(workflow, token)
    assert status == 202, body
    run = wait_status(body["run_id"], timeout=budget)
    assert run.status == "success", (run.status, run.error_code, run.error_message)
    return time.monotonic() - started


def customer_token():
    user = member()
    return user, Token.objects.get_or_create(user=user)[0].key


def test_a_restarted_sqs_server_gets_every_queue_back_from_the_platform_itself(pipeline, sqs_servers):
    first, restart = sqs_servers
    prefix = pipeline.env["CONVEYOR_QUEUE_PREFIX"]
    SqsQueues(first.url, prefix, visibility_timeout=30).create()
    platform = pipeline.platform(**OUTAGE_ENV)
    user, token = customer_token()
    workflow = pipeline.workflow(org=user.membership.organization)
    trigger_and_wait(platform, workflow, token, 30)

    fresh = restart()
    assert existing_queues(fresh, prefix) == {}
    restarted_at = Execution.objects.latest("created_at").created_at

    elapsed = trigger_and_wait(platform, workflow, token, RECOVERY_BUDGET_S)
    print(f"queues lost: the first run after the SQS restart succeeded in {elapsed:.1f} s")
    assert wait_for(lambda: set(existing_queues(fresh, prefix)) == set(QUEUE_NAMES), timeout=RECOVERY_BUDGET_S)
    assert existing_queues(fresh, prefix) == {name: "30" for name in QUEUE_NAMES}
    wait_for(lambda: reaper_swept_since(restarted_at), timeout=RECOVERY_BUDGET_S)
    assert platform.all_running_unrestarted(), pipeline.processes.logs()
    logs = "".join(p.log_text() for p in platform.processes.values())
    assert "Unrecoverable error" not in logs and "QueueDoesNotExist" not in platform.runs.log_text().split("ready.")[-1]
    assert "was missing: created again" in logs


def test_with_queue_creation_off_a_missing_queue_is_one_clear_error_and_nothing_exits(pipeline, sqs_servers):
    first, restart = sqs_servers
    prefix = pipeline.env["CONVEYOR_QUEUE_PREFIX"]
    SqsQueues(first.url, prefix, visibility_timeout=30).create()
    platform = pipeline.platform(**OUTAGE_ENV, CONVEYOR_SQS_CREATE_QUEUES=0)
    user, token = customer_token()
    workflow = pipeline.workflow(org=user.membership.organization)
    trigger_and_wait(platform, workflow, token, 30)

    fresh = restart()
    wanted = f"SQS queue '{prefix}runs' does not exist and CONVEYOR_SQS_CREATE_QUEUES=0 forbids creating it"
    assert platform.runs.wait_for_log(wanted, timeout=RECOVERY_BUDGET_S), platform.runs.log_text()[-3000:]

    status, body = platform.trigger(workflow, token)
    assert status == 503, body
    run = Execution.objects.get(pk=body["run_id"])
    assert (run.status, run.error_code) == ("system_error", "MS-0001")
    assert (
        "CONVEYOR_SQS_CREATE_QUEUES" in run.error_message and "CONVEYOR_SQS_CREATE_QUEUES" not in run.customer_message
    )
    assert existing_queues(fresh, prefix) == {}  # nobody created them

    time.sleep(3)  # the workers keep polling the missing queues, and keep running
    assert platform.all_running_unrestarted(), pipeline.processes.logs()
    assert platform.runs.log_text().count(wanted) <= 2  # one clear error, not one per poll

    SqsQueues(fresh.url, prefix, visibility_timeout=30).create()  # the operator creates them
    trigger_and_wait(platform, workflow, token, RECOVERY_BUDGET_S)
    assert platform.all_running_unrestarted(), pipeline.processes.logs()
