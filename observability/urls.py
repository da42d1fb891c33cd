from django.urls import path

from observability import views

# Replaces django_prometheus.urls' /metrics (same name): the same process metrics, merged
# across processes when PROMETHEUS_MULTIPROC_DIR is set, plus the project's collectors.
urlpatterns = [path("metrics", views.metrics, name="prometheus-django-metrics")]
