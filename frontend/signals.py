"""A lockout is counted where it happens, the runs pages or the admin."""

from __future__ import annotations

from axes.signals import user_locked_out
from django.dispatch import receiver

from frontend.metrics import LOGIN_LOCKOUTS


@receiver(user_locked_out, dispatch_uid="conveyor-login-lockouts")
def count_lockout(sender, request=None, **kwargs) -> None:
    path = getattr(request, "path", "") or ""
    LOGIN_LOCKOUTS.labels(site="admin" if path.startswith("/admin/") else "runs").inc()
