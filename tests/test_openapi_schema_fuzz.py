"""Schemathesis drives every operation of the OpenAPI schema — the REST API and the signed
webhook intake — against a live server (the SQS endpoint up, so triggers, re-runs and
events really publish) with every conformance check (`--checks all`): no server error, every
status code, content type, header and body the schema documents, valid data accepted and
invalid data rejected.

Cases are drawn per operation, valid and invalid ones, with the path's id pointing at
real objects of the caller's organization so the operations do real work. Each webhook
request is signed in a schemathesis `before_call` hook with the v2 scheme (docs/webhooks.md),
over the exact bytes sent, so it reaches the handler; the `ignored_auth` check's probes go
unsigned and must be refused. (Schemathesis's lazy pytest integration does not run on
pytest 9, so the operations are walked here.) Bounded and deterministic: a fixed number of
derandomized examples per operation and mode.
"""

import time

import pytest
import requests
import schemathesis
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from executions.models import Execution
from scheduler import webhooks
from scheduler.models import WebhookEndpoint
from scheduler.schema import INTAKE_PATH
from tests.factories import make_execution, make_workflow
from tests.ui import live_server, member
from workflows.models import Workflow

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_MODE = 5
# What the suite's configuration changes from schemathesis's defaults, and why:
# - NUL characters are refused everywhere (workflows/payloads.py: PostgreSQL cannot store
#   them) and JSON Schema cannot say "no NUL anywhere in this object": they are tested by
#   tests/test_api_refuses_hostile_input.py, not drawn here as "valid" data;
# - the test supplies the credentials (a token; the webhook signer), rather than letting
#   schemathesis generate random ones for every case;
# - a workflow's definition and trigger are validated beyond what their JSON schema says
#   (steps referencing earlier steps, known actions, cron expressions): a generated
#   "valid" definition is refused with a 400 naming the field, which is what must happen.
CONFIG = """
[generation]
allow-x00 = false
with-security-parameters = false

[[operations]]
include-path-regex = "^/api/workflows/"
include-method-regex = "^(POST|PUT|PATCH)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "409", "429"]
"""


class V2Signer(requests.auth.AuthBase):
    """Signs the prepared request, so the signature covers the bytes really sent."""

    def __init__(self, secret: str):
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        timestamp = int(time.time())
        event_id = request.headers.get(webhooks.EVENT_ID_HEADER, "")
        request.headers[webhooks.TIMESTAMP_HEADER] = str(timestamp)
        request.headers[webhooks.SIGNATURE_HEADER] = webhooks.sign(self.secret, timestamp, event_id, body)
        return request


@pytest.fixture
def caller():
    user = member()
    org = user.membership.organization
    workflow = make_workflow(org)
    finished = make_execution(workflow, status="system_error", error_type="system", error_code="P-0005")
    token, _ = Token.objects.get_or_create(user=user)
    endpoint = WebhookEndpoint.objects.get(workflow=make_workflow(org, name="events", trigger_type="event"))
    return {
        "headers": {"Authorization": f"Token {token.key}"},
        "workflow": workflow,
        "run": finished,
        "endpoint": endpoint,
        "signer": V2Signer(endpoint.get_secret()),
    }


@pytest.fixture
def signed_webhooks(caller):
    """The schemathesis hook: every webhook case is signed before it is sent."""

    def before_call(context, case, kwargs):
        if case.operation.path == INTAKE_PATH:
            kwargs["auth"] = caller["signer"]

    GLOBAL_HOOK_DISPATCHER.register_hook_with_name(before_call, "before_call")
    yield
    GLOBAL_HOOK_DISPATCHER.unregister(before_call)


def drive(
    operation, mode, *, url: str, caller: dict, checks: list, answers: dict, failures: list, timings: dict
) -> None:
    """Draw cases of one operation in one generation mode, call the live server, run the checks."""
    label = f"{operation.method.upper()} {operation.path}"
    webhook = operation.path == INTAKE_PATH
    on_workflow = operation.path.startswith("/api/workflows/{id}")
    if webhook:
        fixed = {"token": caller["endpoint"].token}
    elif "{id}" in operation.path:
        fixed = {"id": caller["workflow"].pk if on_workflow else str(caller["run"].pk)}
    else:
        fixed = None
    headers = {} if webhook else caller["headers"]
    transport = {"auth": caller["signer"]} if webhook else None

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
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
        response = case.call(base_url=url, headers=headers)
        answers.setdefault(label, set()).add(response.status_code)
        try:
            case.validate_response(
                response, checks=checks, headers={**headers, **case.headers}, transport_kwargs=transport
            )
        except (Exception, BaseExceptionGroup) as failure:  # a FailureGroup too: collected, every operation reported
            failures.append(f"{label} ({mode.value}): {failure}")

    started = time.monotonic()
    try:
        call()
    except Unsatisfiable:
        # Nothing of this operation can be made invalid once its path is fixed.
        assert mode is GenerationMode.NEGATIVE, f"no valid case for {label}"
    timings[f"{label} {mode.value}"] = round(time.monotonic() - started, 1)


def test_every_operation_conforms_to_the_schema_under_all_checks(producer_app, sqs_queues, caller, signed_webhooks):
    load_all_checks()
    checks = CHECKS.get_all()
    names = {check.__name__ for check in checks}
    assert {
        "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
        "response_headers_conformance", "negative_data_rejection", "positive_data_acceptance", "ignored_auth",
    } <= names  # fmt: skip
    failures: list[str] = []
    answers: dict[str, set[int]] = {}
    timings: dict[str, float] = {}
    rates = {"CONVEYOR_TRIGGER_RATE": "10000/minute", "CONVEYOR_WEBHOOK_RATE": "10000/minute"}
    with override_settings(**rates), live_server() as url:
        schema = schemathesis.openapi.from_url(
            f"{url}/api/schema/?format=json", config=SchemathesisConfig.from_str(CONFIG)
        )
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 13 and INTAKE_PATH in {operation.path for operation in operations}
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                drive(
                    operation, mode, url=url, caller=caller, checks=checks, answers=answers, failures=failures,
                    timings=timings,
                )  # fmt: skip
    print({label: sorted(codes) for label, codes in answers.items()}, timings)
    assert not failures, "\n".join(failures)
    assert 202 in answers["POST /api/workflows/{id}/runs/"] and 202 in answers["POST /api/runs/{id}/rerun/"]
    assert 202 in answers[f"POST {INTAKE_PATH}"]  # signed deliveries reached the handler and made runs
    assert Execution.objects.filter(trigger_type__in=["manual", "rerun", "event"]).exists()
    assert Execution.objects.filter(trigger_type="event").exists()
