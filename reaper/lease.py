"""A named lease row, taken by compare-and-swap: one holder at a time, on SQLite and
PostgreSQL alike. An expired lease (its holder died) can be taken over."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from reaper.models import Lease


def acquire(name: str, holder: str, ttl_seconds: float) -> bool:
    now = timezone.now()
    try:
        with transaction.atomic():
            Lease.objects.get_or_create(name=name, defaults={"expires_at": now - timedelta(seconds=1)})
    except IntegrityError:
        pass  # created by a concurrent caller
    return bool(
        Lease.objects.filter(name=name)
        .filter(Q(expires_at__lt=now) | Q(holder=holder))
        .update(holder=holder, expires_at=now + timedelta(seconds=ttl_seconds))
    )


def release(name: str, holder: str) -> None:
    now = timezone.now()
    Lease.objects.filter(name=name, holder=holder).update(expires_at=now, last_finished_at=now)
