"""Run status notifications (PostgreSQL LISTEN/NOTIFY) for the API's wait endpoint."""

from __future__ import annotations

RUN_STATUS_CHANNEL = "conveyor_run_status"
