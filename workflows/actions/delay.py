"""delay: {"seconds": n} sleeps in place (the run keeps its worker), capped by
settings.DELAY_ACTION_MAX_S (the output says when it was) and never past the run's
deadline."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from failures.errors import RunDeadlineExceeded, StepConfigError
from workflows.actions.registry import Action, StepContext, check_number, is_number
from workflows.runtime_settings import settings


class DelayAction(Action):
    name = "delay"
    # Computes or waits only: repeating it is always safe.
    idempotent_always = True
    allowed_fields = required_fields = ("seconds",)

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, str]:
        errors = self.field_problems(config)
        if "seconds" in config:
            # No maximum here: a longer delay is capped when it runs (and says so in its
            # output), so a workflow saved under a higher cap keeps running.
            check_number(config, "seconds", errors, minimum=0)
        return errors

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
        raw = config.get("seconds")
        if not is_number(raw):
            raise StepConfigError("config.seconds: must be a number of seconds, at least 0")
        requested = float(raw)  # type: ignore[arg-type]  # is_number said so
        if requested < 0:
            raise StepConfigError("config.seconds: must be a number of seconds, at least 0")
        seconds = min(requested, float(settings.DELAY_ACTION_MAX_S))
        remaining = ctx.remaining()
        if remaining is not None and seconds > remaining:
            # Sleeping until the deadline only to fail then would hold the worker for nothing.
            raise RunDeadlineExceeded(
                f"delay of {seconds:g}s would pass the run's deadline ({max(remaining, 0):.1f}s left)"
            )
        time.sleep(seconds)
        return {"requested_s": raw, "slept_s": seconds, "capped": seconds < requested}
