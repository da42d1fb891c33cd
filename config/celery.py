import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def _survive_failed_receives() -> None:
    """kombu 5.7: when an SQS ReceiveMessage fails at the network level (connection reset
    or refused, a 5xx), the async client hands `[]` to `_on_messages_ready`, whose
    `.get("Messages")` raises and takes the whole worker down. An SQS outage must leave
    the worker polling until the queue is back, so such a result counts as "no
    messages"."""
    from kombu.transport.SQS import Channel

    original = Channel._on_messages_ready
    if getattr(original, "conveyor_patched", False):
        return

    def on_messages_ready(self, queue, qname, messages):
        if not isinstance(messages, dict):
            return 0
        return original(self, queue, qname, messages)

    on_messages_ready.conveyor_patched = True
    Channel._on_messages_ready = on_messages_ready


_survive_failed_receives()

app = Celery("conveyor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
