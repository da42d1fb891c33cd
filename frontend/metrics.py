"""Counters of the pages' own events."""

from __future__ import annotations

from prometheus_client import Counter

LOGIN_LOCKOUTS = Counter(
    "conveyor_login_lockouts",
    "Sign-ins refused because the username and address failed too often, by site",
    ["site"],
)
