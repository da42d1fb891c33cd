from django.apps import AppConfig


class PipelineConfig(AppConfig):
    """The consumer, its Celery tasks and the runtimes (an app so Celery finds its tasks)."""

    name = "pipeline"
    verbose_name = "Pipeline"
