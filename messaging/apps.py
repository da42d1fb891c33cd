from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The consumer's liveness thread starts and stops with the worker; expired periodic
        # messages are counted (Celery signals).
        # In ready(): the signal receivers import the liveness module, which reads models.
        from messaging import signals  # noqa: F401
