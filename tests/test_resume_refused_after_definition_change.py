"""End to end: a run fails at its second step; the workflow's first step is changed
before anyone resumes it: the resume is refused naming that step (its recorded output no
longer answers the workflow as it is), and no run is created."""

import pytest

from executions import services
from executions.enqueue import enqueue
from executions.models import Execution
from tests.e2e import wait_status
from tests.helpers_http import LoopbackHTTPServer, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_definition_changed_before_the_failed_step_refuses_the_resume(pipeline, settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with LoopbackHTTPServer() as server:
        server.route("/read", Reply(200, {"v": 1}))
        server.route("/write", Reply(503, "down"))
        definition = {
            "steps": [
                {"id": "read", "action": "http_request", "config": {"url": server.url("/read")}},
                {"id": "write", "action": "http_request", "config": {"url": server.url("/write"), "method": "PUT"}},
            ]
        }
        workflow = pipeline.workflow(definition)
        pipeline.worker(CONVEYOR_HTTP_ALLOWED_NETWORKS="127.0.0.1/32")
        original = wait_status(enqueue(workflow, trigger_type="manual").execution.pk, timeout=60)
        assert original.status == "error"

    definition["steps"][0]["config"]["url"] = "https://api.example.com/read-v2"
    workflow.definition = definition
    workflow.save()

    with pytest.raises(services.ResumeRefused) as refused:
        services.resume_run(original, actor="operator:olga", origin="operator")
    assert "step 'read' changed" in str(refused.value)
    assert not Execution.objects.filter(rerun_of=original).exists()
