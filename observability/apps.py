from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Observability"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The worker's metrics exporter (started by a Celery signal when
        # CONVEYOR_WORKER_METRICS_PORT is set): docs/decisions/0005-worker-metrics.md.
        from observability import worker_exporter  # noqa: F401
