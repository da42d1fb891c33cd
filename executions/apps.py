from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    """Runs, their steps and transition log; also the label of the tenancy and workflows
    models (tenancy.models, workflows.models), which kept their tables and admin URLs."""

    name = "executions"
    default_auto_field = "django.db.models.BigAutoField"
