"""The admin lists every worker's consumer liveness with a status badge, read-only."""

import pytest
from django.utils import timezone

from messaging.models import WorkerLiveness
from tests.ui import staff_client

pytestmark = pytest.mark.django_db


def test_the_operator_sees_each_worker_and_its_queues():
    WorkerLiveness.objects.create(
        node="runs@host-1",
        hostname="host-1",
        pid=42,
        status="degraded",
        details={"queues": {"runs": {"state": "degraded", "last_receive_at": None, "failures_in_a_row": 7}}},
        updated_at=timezone.now(),
    )
    client, _ = staff_client()

    page = client.get("/admin/messaging/workerliveness/").content.decode()

    assert "runs@host-1" in page and "degraded" in page
    assert "runs: degraded, last receive never, 7 failures in a row" in page
    row = WorkerLiveness.objects.get()
    assert client.get(f"/admin/messaging/workerliveness/{row.pk}/change/").status_code == 200
    assert client.get("/admin/messaging/workerliveness/add/").status_code == 403
