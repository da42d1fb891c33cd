from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    """Platform incidents: system errors grouped into one thing an operator handles and a
    customer is told about (docs/decisions/0012-incidents.md)."""

    name = "incidents"
    verbose_name = "Platform incidents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # executions sits below this app and cannot import it: the notice a run's pages and
        # API show is registered here (executions.presentation.register_incident_notice).
        from executions.presentation import register_incident_notice
        from incidents.queries import customer_notice

        register_incident_notice(customer_notice)
