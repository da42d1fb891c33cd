"""Schemathesis drives every operation of the OpenAPI schema against a live server (the
SQS endpoint up, so triggers and re-runs really publish) and finds no server error.

Cases are drawn per operation, valid and invalid ones, with the path's id pointing at
real objects of the caller's organization so the operations do real work. (Schemathesis's
lazy pytest integration does not run on pytest 9, so the operations are walked here.)
"""

import pytest
import schemathesis
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from executions.models import Execution
from tests.factories import make_execution, make_workflow
from tests.ui import live_server, member
from workflows.models import Workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_MODE = 10


@pytest.fixture
def caller():
    user = member()
    workflow = make_workflow(user.membership.organization)
    finished = make_execution(workflow, status="system_error", error_type="system", error_code="P-0005")
    token, _ = Token.objects.get_or_create(user=user)
    return {"headers": {"Authorization": f"Token {token.key}"}, "workflow": workflow, "run": finished}


def drive(operation, mode, *, url: str, caller: dict, answers: dict, failures: list) -> None:
    """Draw cases of one operation in one generation mode and call the live server."""
    label = f"{operation.method.upper()} {operation.path}"
    on_workflow = operation.path.startswith("/api/workflows/{id}")
    ids = {"id": caller["workflow"].pk if on_workflow else str(caller["run"].pk)}

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=ids if "{id}" in operation.path else None))
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case):
        if on_workflow:  # a previous case may have deleted or disabled it
            Workflow.objects.filter(pk=caller["workflow"].pk).update(deleted_at=None, enabled=True)
        response = case.call(base_url=url, headers=caller["headers"])
        answers.setdefault(label, set()).add(response.status_code)
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except Exception as failure:  # collected: report every operation at once
            failures.append(f"{label} ({mode.value}): {failure}")

    try:
        call()
    except Unsatisfiable:
        # Nothing of this operation can be made invalid once its path is fixed.
        assert mode is GenerationMode.NEGATIVE, f"no valid case for {label}"


def test_no_operation_answers_with_a_server_error(producer_app, sqs_queues, caller):
    failures: list[str] = []
    answers: dict[str, set[int]] = {}
    with override_settings(CONVEYOR_TRIGGER_RATE="10000/minute"), live_server() as url:
        schema = schemathesis.openapi.from_url(f"{url}/api/schema/?format=json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                drive(operation, mode, url=url, caller=caller, answers=answers, failures=failures)
    print({label: sorted(codes) for label, codes in answers.items()})
    assert not failures, "\n".join(failures)
    assert 202 in answers["POST /api/workflows/{id}/runs/"] and 202 in answers["POST /api/runs/{id}/rerun/"]
    assert Execution.objects.filter(trigger_type__in=["manual", "rerun"]).exists()  # the SQS path was exercised
