"""Event webhook intake URLs; the project's urls include them at "hooks/"."""

from django.urls import path

from scheduler import views

app_name = "hooks"

urlpatterns = [
    path("<str:token>/", views.intake, name="intake"),
]
