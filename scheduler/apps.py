from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # In ready(): the receivers import models, not loadable while the registry loads.
        from scheduler import signals  # noqa: F401  (registers signal receivers)
