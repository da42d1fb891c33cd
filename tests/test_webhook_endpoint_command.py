"""An operator reads (or rotates) an event workflow's intake URL and signing secret with
`manage.py webhook_endpoint <workflow id>`."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from scheduler.models import WebhookEndpoint
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db


def run(*args) -> dict[str, str]:
    out = StringIO()
    call_command("webhook_endpoint", *args, stdout=out)
    return dict(line.split(": ", 1) for line in out.getvalue().splitlines() if ": " in line)


def test_the_command_shows_the_url_and_secret_and_rotates_them():
    workflow = make_workflow(trigger_type="event")
    endpoint = WebhookEndpoint.objects.get(workflow=workflow)
    shown = run(str(workflow.pk))
    assert shown["url"].strip() == f"/hooks/{endpoint.token}/" and shown["secret"].strip() == endpoint.get_secret()

    rotated = run(str(workflow.pk), "--rotate")
    assert rotated["url"] == shown["url"] and rotated["secret"] != shown["secret"]
    moved = run(str(workflow.pk), "--rotate-url")
    assert moved["url"] != shown["url"]


def test_the_command_refuses_a_workflow_not_triggered_by_events():
    with pytest.raises(CommandError, match="not by events"):
        run(str(make_workflow().pk))
