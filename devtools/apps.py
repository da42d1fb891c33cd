from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """The development tools: `manage.py platform` (the embedded platform) and `bootstrap`."""

    name = "devtools"
    verbose_name = "Development tools"
