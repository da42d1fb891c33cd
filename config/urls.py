from django.contrib import admin
from django.urls import include, path

from observability.views import health

urlpatterns = [
    # Before the admin's own URLs: its catch-all would answer 404 for this one.
    path("admin/health/", health, name="health"),
    path("admin/", admin.site.urls),
    path("hooks/", include("scheduler.urls")),
    path("api/", include("executions.api.urls")),
    path("", include("observability.urls")),
    path("", include("frontend.urls")),
]
