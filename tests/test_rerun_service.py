"""Any finished run can be re-run: the new run links to the old one, keeps its input,
runs the workflow's current definition (its version recorded) and has dispatch key
rerun:<original>:<n>. A run that is not finished is refused with a clear error."""

import pytest
from django.utils import timezone

from executions.enqueue import enqueue
from executions.models import Execution
from executions.presentation import rerun_notice
from executions.rerun import RerunRefused, rerun
from executions.transitions import fail
from failures.catalogue import MAY_HAVE_PARTLY_RUN, SAFE_TO_RERUN
from failures.classifier import system_fault
from failures.statuses import Actor, ExecutionStatus
from tests.factories import make_execution, make_workflow

pytestmark = pytest.mark.django_db
S = ExecutionStatus
V2 = {
    "steps": [
        {"id": "one", "action": "transform", "config": {"output": {"v": 2}}},
        {"id": "two", "action": "transform", "config": {"output": {"v": 2}}},
    ]
}


def failed_with(workflow, code: str, **kwargs) -> Execution:
    run = enqueue(workflow, trigger_type="manual", **kwargs).execution
    fail(run.pk, system_fault(code, "test"), actor=Actor.REAPER, expected=[S.PENDING])
    run.refresh_from_db()
    return run


def test_a_rerun_links_to_the_original_keeps_its_input_and_runs_the_current_definition():
    workflow = make_workflow()
    original = failed_with(workflow, "P-0005", input={"customer": 7})
    workflow.definition = V2
    workflow.save()
    assert workflow.version == 2

    child = rerun(original, actor="api:alice")

    assert (child.trigger_type, child.status, child.rerun_of_id) == ("rerun", "pending", original.pk)
    assert child.input == {"customer": 7}
    assert (child.workflow_version, child.steps_total) == (2, 2)
    assert child.dispatch_key == f"rerun:{original.pk}:1" and child.attempt == 1
    assert original.workflow_version == 1


def test_each_rerun_of_a_run_gets_the_next_number():
    original = failed_with(make_workflow(), "MS-0001")
    keys = [rerun(original, actor="operator:bob").dispatch_key for _ in range(3)]
    assert keys == [f"rerun:{original.pk}:{n}" for n in (1, 2, 3)]


@pytest.mark.parametrize("status", [S.SUCCESS, S.ERROR, S.CANCELLED, S.SKIPPED])
def test_every_finished_status_can_be_re_run(status):
    original = make_execution(status=status, finished_at=timezone.now(), input={"x": 1})
    assert rerun(original, actor="test").rerun_of_id == original.pk


@pytest.mark.parametrize("status", [S.PENDING, S.RUNNING])
def test_a_run_that_is_not_finished_is_refused(status):
    original = make_execution(status=status)
    with pytest.raises(RerunRefused, match=f"is {status}: only a finished run can be re-run"):
        rerun(original, actor="test")
    assert not Execution.objects.filter(rerun_of=original).exists()


def test_a_run_of_a_deleted_or_disabled_workflow_is_refused():
    workflow = make_workflow()
    original = make_execution(workflow, status=S.SUCCESS, finished_at=timezone.now())
    workflow.enabled = False
    workflow.save()
    with pytest.raises(RerunRefused, match="is disabled"):
        rerun(original, actor="test")
    workflow.enabled, workflow.deleted_at = True, timezone.now()
    workflow.save()
    with pytest.raises(RerunRefused, match="was deleted"):
        rerun(original, actor="test")


def test_safe_to_re_run_is_said_only_of_runs_that_provably_did_no_work():
    workflow = make_workflow()
    for code in ("P-0005", "P-0001", "P-0002", "MS-0001", "CS-0001"):
        assert rerun_notice(failed_with(workflow, code)) == SAFE_TO_RERUN
    for code in ("P-0003", "E-0001", "C-0001", "N-0001"):
        assert rerun_notice(failed_with(workflow, code)) == MAY_HAVE_PARTLY_RUN
    assert rerun_notice(make_execution(workflow, status=S.PENDING)) == ""
