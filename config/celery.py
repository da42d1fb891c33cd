import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# The broker transport is messaging.broker:Transport (settings.CELERY_BROKER_TRANSPORT):
# kombu's SQS transport made to survive broker outages, docs/decisions/0007.
app = Celery("conveyor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
