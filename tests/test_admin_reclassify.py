"""An operator reclassifies a failed run from the admin: type, category and code change,
the status follows the single rule, and the reason is kept in the transition log."""

import pytest

from executions.models import Transition
from tests.factories import make_execution
from tests.ui import staff_client

pytestmark = [pytest.mark.django_db]


def url(run) -> str:
    return f"/admin/executions/execution/{run.pk}/reclassify/"


@pytest.fixture
def operator():
    return staff_client("olga")[0]


def system_error(code="C-0001", message="KeyError: 'amount' in platform code at worker-3.internal"):
    return make_execution(
        status="system_error", error_type="system", error_category="workflow_engine", error_code=code,
        error_message=message, classifier_rule="unclassified",
    )  # fmt: skip


def test_a_system_error_the_workflow_caused_becomes_an_error_with_the_reason_logged(operator):
    run = system_error()

    response = operator.post(
        url(run),
        {
            "error_type": "user",
            "customer_message": "Step 'charge' read a field 'amount' your input does not have.",
            "reason": "INC-42: the input lacked 'amount'; not a platform fault",
        },
    )

    assert response.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.error_type, run.error_category, run.error_code) == ("error", "user", "workflow", "")
    assert run.customer_message == "Step 'charge' read a field 'amount' your input does not have."
    assert run.classifier_rule == "operator"
    last = Transition.objects.filter(execution=run).latest("at")
    assert (last.from_status, last.to_status, last.actor, last.move) == (
        "system_error",
        "error",
        "operator",
        "reclassify",
    )
    assert last.reason == "olga: INC-42: the input lacked 'amount'; not a platform fault"


def test_an_error_the_platform_caused_becomes_a_system_error_with_its_catalogue_category(operator):
    run = make_execution(status="error", error_type="external", error_category="external_service", error_message="503")

    operator.post(url(run), {"error_type": "system", "error_code": "N-0002", "reason": "our egress proxy was down"})

    run.refresh_from_db()
    assert (run.status, run.error_type, run.error_category, run.error_code) == (
        "system_error",
        "system",
        "network_rpc",
        "N-0002",
    )
    assert "(reference N-0002)" in run.customer_message


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"error_type": "system", "reason": "r"}, "error_code"),
        ({"error_type": "system", "error_code": "C-0002", "error_category": "auth", "reason": "r"}, "error_category"),
        ({"error_type": "user", "error_code": "C-0002", "reason": "r"}, "error_code"),
        ({"error_type": "user", "reason": "r"}, "customer_message"),  # the internal text must not leak
        ({"error_type": "system", "error_code": "C-0002"}, "reason"),
    ],
)
def test_an_inconsistent_override_is_refused_field_by_field(operator, form, field):
    run = system_error()

    response = operator.post(url(run), form)

    assert response.status_code == 200 and field in response.context["form"].errors
    run.refresh_from_db()
    assert (run.status, run.error_code) == ("system_error", "C-0001")
    assert not Transition.objects.filter(execution=run, move="reclassify").exists()


def test_a_run_that_did_not_fail_cannot_be_reclassified(operator):
    run = make_execution(status="success")
    response = operator.post(url(run), {"error_type": "system", "error_code": "C-0002", "reason": "r"})
    assert response.status_code == 200 and "only a failed run" in response.content.decode()
    run.refresh_from_db()
    assert run.status == "success"
