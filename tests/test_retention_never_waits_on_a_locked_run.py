"""A retention batch is a short transaction that skips the runs someone else holds a lock
on (FOR UPDATE SKIP LOCKED): it never waits, and the held run goes in a later pass."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from executions.models import Execution
from observability.retention import purge_expired
from tests.factories import make_execution, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_locked_expired_run_is_skipped_without_waiting(settings):
    settings.RETENTION_DAYS = 90
    workflow = make_workflow()
    old = timezone.now() - timedelta(days=100)
    held, free = (make_execution(workflow, status="success", finished_at=old) for _ in range(2))
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                Execution.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        report = purge_expired()
        took = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)

    assert took < 2.0
    assert report.executions == 1
    assert list(Execution.objects.values_list("pk", flat=True)) == [held.pk]
    assert purge_expired().executions == 1
    assert not Execution.objects.exists()
