"""System checks of the trigger settings (they fail `manage.py check` and every start)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured


@register()
def trigger_settings(app_configs, **kwargs):
    errors = []
    try:
        from scheduler.chains import configured_chains

        chains = configured_chains()
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), id="scheduler.E001"))
        chains = ()
    if chains:
        try:
            import web3  # noqa: F401
        except ImportError:
            errors.append(Error("CONVEYOR_CHAINS lists chains but web3 is not installed", id="scheduler.E002"))
    # getattr: these settings arrive with the triggers; a checkout without them must still start.
    window, tick = getattr(settings, "SCHEDULE_CATCHUP_WINDOW_S", None), getattr(settings, "SCHEDULE_TICK_S", None)
    if window is not None and tick is not None and window < 2 * tick:
        errors.append(
            Error(
                f"CONVEYOR_SCHEDULE_CATCHUP_WINDOW_S ({window}) must be at least twice "
                f"CONVEYOR_SCHEDULE_TICK_S ({tick}), or a fire time found by a late tick "
                "counts as missed",
                id="scheduler.E003",
            )
        )
    lookback, retry_tick = (
        getattr(settings, "SYSTEM_RETRY_LOOKBACK_S", None),
        getattr(settings, "SYSTEM_RETRY_TICK_S", None),
    )
    if lookback is not None and retry_tick is not None and lookback < 2 * retry_tick:
        errors.append(
            Error(
                "CONVEYOR_SYSTEM_RETRY_LOOKBACK_S must be at least twice CONVEYOR_SYSTEM_RETRY_TICK_S",
                id="scheduler.E004",
            )
        )
    return errors
