"""Stored digests are viewable, not editable, in the Django admin."""

from datetime import UTC, datetime

import pytest

from observability import tasks
from observability.models import FailureDigest
from tests.factories import make_execution, make_org, make_workflow

pytestmark = pytest.mark.django_db


def test_an_operator_reads_a_sent_digest_in_the_admin(admin_client):
    org = make_org("acme")
    make_execution(make_workflow(org), status="system_error", error_type="system", error_code="C-0002",
                   error_category="database", finished_at=datetime(2030, 1, 9, 8, tzinfo=UTC))  # fmt: skip
    tasks.send_organization_digest.run(org.pk, "daily", "2030-01-10T06:00:00+00:00")
    digest = FailureDigest.objects.get()

    listing = admin_client.get("/admin/observability/failuredigest/")
    detail = admin_client.get(f"/admin/observability/failuredigest/{digest.pk}/change/")

    assert listing.status_code == 200
    assert "0.0%" in listing.content.decode()  # success rate: nothing succeeded
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "System errors (platform failures, not your workflows&#x27; fault): 1" in page
    assert 'name="body"' not in page  # read-only
    assert admin_client.get("/admin/observability/failuredigest/add/").status_code == 403
