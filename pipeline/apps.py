from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "pipeline"
    verbose_name = "Pipeline"

    def ready(self) -> None:
        # The consumer's liveness thread starts and stops with the worker (Celery signals).
        from pipeline import signals  # noqa: F401
