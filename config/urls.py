from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("hooks/", include("scheduler.urls")),
    path("api/", include("executions.api.urls")),
    path("", include("observability.urls")),
    path("", include("frontend.urls")),
]
