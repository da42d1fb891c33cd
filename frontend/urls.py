"""The organization's pages; the project includes them at "" (namespace "frontend")."""

from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from frontend import views

app_name = "frontend"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="frontend:runs", permanent=False), name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="frontend/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="frontend:login"), name="logout"),
    path("runs/", views.runs, name="runs"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<uuid:run_id>/status/", views.run_status, name="run-status"),
    path("runs/<uuid:run_id>/rerun/", views.run_rerun, name="run-rerun"),
    path("runs/<uuid:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<uuid:run_id>/resume/", views.run_resume, name="run-resume"),
    path("workflows/", views.workflows, name="workflows"),
    path("workflows/<int:workflow_id>/", views.workflow_detail, name="workflow-detail"),
    path("workflows/<int:workflow_id>/run/", views.workflow_run_now, name="workflow-run-now"),
]
