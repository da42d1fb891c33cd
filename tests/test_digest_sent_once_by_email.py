"""The beat task fans out one digest task per organization on the maintenance queue; each
builds the digest, stores it as a FailureDigest and sends it through Django's email
backend to the organization's members, once per organization and period."""

from datetime import UTC, datetime

import pytest
from django.conf import settings

from observability import tasks
from observability.models import FailureDigest
from tenancy.models import Organization
from tests.factories import make_execution, make_org, make_user, make_workflow

pytestmark = pytest.mark.django_db
UNTIL = "2030-01-10T06:00:00+00:00"


@pytest.fixture
def org():
    org = make_org("acme")
    for name in ("ana", "bo"):
        user = make_user(org, name)
        user.email = f"{name}@acme.example"
        user.save()
    make_user(org, "no-email")
    workflow = make_workflow(org, name="billing")
    finished_at = datetime(2030, 1, 9, 12, tzinfo=UTC)
    make_execution(workflow, status="success", finished_at=finished_at)
    make_execution(workflow, status="system_error", error_type="system", error_code="P-0003",
                   error_category="infrastructure", finished_at=finished_at)  # fmt: skip
    return org


def test_the_beat_task_sends_one_digest_task_per_organization_to_the_maintenance_queue(org, monkeypatch):
    make_org("quiet")
    sent = []
    monkeypatch.setattr(
        tasks.send_organization_digest, "apply_async", lambda args, queue: sent.append((args[0], args[1], queue))
    )

    assert tasks.send_failure_digests.run("weekly") == Organization.objects.count() == 2

    assert sorted(sent) == sorted(
        (pk, "weekly", settings.MAINTENANCE_QUEUE) for pk in Organization.objects.values_list("pk", flat=True)
    )


def test_the_digest_is_emailed_to_members_and_stored(org, mailoutbox):
    assert tasks.send_organization_digest.run(org.pk, "daily", UNTIL) == "sent"

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == ["ana@acme.example", "bo@acme.example"]
    assert "1 system errors, 0 workflow errors" in mail.subject
    assert "System errors (platform failures, not your workflows' fault): 1" in mail.body
    record = FailureDigest.objects.get(organization=org, period="daily")
    assert record.body == mail.body
    assert (record.runs_finished, record.system_errors, record.workflow_errors) == (2, 1, 0)
    assert record.success_rate == pytest.approx(0.5)
    assert record.period_start == datetime(2030, 1, 9, tzinfo=UTC)
    assert record.sent_at is not None
    assert record.data["totals"]["system_error"] == 1


def test_a_second_delivery_for_the_same_period_sends_nothing(org, mailoutbox):
    tasks.send_organization_digest.run(org.pk, "daily", UNTIL)
    tasks.send_organization_digest.run(org.pk, "daily", "2030-01-10T23:59:00+00:00")

    assert len(mailoutbox) == 1
    assert FailureDigest.objects.filter(organization=org).count() == 1


def test_an_organization_without_finished_runs_in_the_period_gets_no_digest(mailoutbox):
    quiet = make_org("quiet")

    assert tasks.send_organization_digest.run(quiet.pk, "weekly", UNTIL) == "empty"

    assert mailoutbox == []
    assert not FailureDigest.objects.exists()
