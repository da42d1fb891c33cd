"""The settings the engine and its actions read, from wherever they run.

In a process that has the platform's settings (web, worker, the inline runtime) each read
goes to `django.conf.settings`, so a test's `settings` override applies as before. The
isolated runtime's child has no platform settings at all (they refuse to load without the
secret key, and it must not hold it): its supervisor hands it `snapshot()` over the pipe
and the child `install()`s it; from then on every read answers from that dict, and a name
missing from it is a bug that fails loudly rather than a silent default.

    from workflows.runtime_settings import settings
    settings.HTTP_ACTION_TIMEOUT_S

Adding a `settings.X` read to the engine or an action means adding X to NAMES.
"""

from __future__ import annotations

from typing import Any

# Every platform setting reachable from workflows.engine and the built-in actions.
NAMES: tuple[str, ...] = (
    "DELAY_ACTION_MAX_S",
    "HTTP_ACTION_ALLOWED_NETWORKS",
    "HTTP_ACTION_CA_BUNDLE",
    "HTTP_ACTION_MAX_REDIRECTS",
    "HTTP_ACTION_MAX_RESPONSE_BYTES",
    "HTTP_ACTION_TIMEOUT_S",
    "JSON_MAX_DEPTH",
    "MAX_DEFINITION_BYTES",
    "MAX_RUN_OUTPUT_BYTES",
    "MAX_STEP_OUTPUT_BYTES",
    "MAX_STEPS_PER_WORKFLOW",
    "PYTHON_CALLABLE_ALLOWLIST",
)


class _RuntimeSettings:
    def __init__(self) -> None:
        self._handed: dict[str, Any] | None = None

    @property
    def sealed(self) -> bool:
        """True in the isolated child: no database, no platform settings."""
        return self._handed is not None

    def install(self, values: dict[str, Any]) -> None:
        missing = [name for name in NAMES if name not in values]
        if missing:
            raise RuntimeError(f"runtime settings handed over without {', '.join(missing)}")
        self._handed = dict(values)

    def snapshot(self) -> dict[str, Any]:
        """What the child needs, read from the platform's settings (JSON-serialisable)."""
        from django.conf import settings as django_settings

        values: dict[str, Any] = {}
        for name in NAMES:
            value = getattr(django_settings, name)
            values[name] = list(value) if isinstance(value, tuple | list | set | frozenset) else value
        return values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in NAMES:
            raise AttributeError(f"{name} is not a runtime setting (workflows/runtime_settings.py NAMES)")
        if self._handed is not None:
            return self._handed[name]
        from django.conf import settings as django_settings

        return getattr(django_settings, name)


settings = _RuntimeSettings()

__all__ = ["NAMES", "settings"]
