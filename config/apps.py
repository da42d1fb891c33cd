from django.apps import AppConfig


class ConveyorConfig(AppConfig):
    """The composition root as an app: it registers the system checks of the invariants
    between settings (config/checks.py)."""

    name = "config"
    label = "conveyor"
    verbose_name = "Conveyor"

    def ready(self) -> None:
        # In ready(): the checks import workflows.chains, which needs settings (a start-up
        # cycle if imported while the app registry is still loading).
        from config import checks  # noqa: F401  (registers system checks)
