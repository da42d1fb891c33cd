"""`manage.py bootstrap`: migrate, then the Example organization, an admin whose password
is printed (or taken from CONVEYOR_ADMIN_PASSWORD) and the example workflow — once."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from devtools.management.commands.bootstrap import EXAMPLE_DEFINITION, EXAMPLE_INPUT
from failures.statuses import TriggerType
from tenancy.models import Member, Organization
from workflows.engine import RunContext, run_definition
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

ADMIN_URL = "http://127.0.0.1:8123/admin/"
_LOGIN = re.compile(r"^Admin login: (?P<url>\S+)  username: (?P<username>\S+)  password: (?P<password>.+)$", re.M)


@pytest.fixture(autouse=True)
def _no_env_password(monkeypatch):
    monkeypatch.delenv("CONVEYOR_ADMIN_PASSWORD", raising=False)


def bootstrap(*args: str) -> tuple[str, re.Match]:
    out = StringIO()
    call_command("bootstrap", "--admin-url", ADMIN_URL, *args, stdout=out, no_color=True)
    text = out.getvalue()
    login = _LOGIN.search(text)
    assert login, f"no credentials line in:\n{text}"
    return text, login


def counts() -> tuple[int, int, int, int]:
    return (
        Organization.objects.count(),
        get_user_model().objects.count(),
        Member.objects.count(),
        Workflow.objects.count(),
    )


def test_creates_organization_admin_membership_and_example_workflow():
    text, login = bootstrap()

    org = Organization.objects.get(slug="example")
    assert org.name == "Example"
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.is_active
    assert Member.objects.get(user=admin).organization == org
    workflow = Workflow.objects.get(organization=org, name="hello")
    assert workflow.trigger_type == TriggerType.MANUAL
    assert workflow.enabled and workflow.deleted_at is None
    assert {step["action"] for step in workflow.definition["steps"]} == {"transform"}

    # The credentials line: URL, username and the generated password, which works.
    assert login["url"] == ADMIN_URL
    assert login["username"] == "admin"
    password = login["password"].strip()
    assert len(password) >= 12 and " " not in password
    assert admin.check_password(password)
    assert "Database migrated" in text
    assert 'Created example workflow "hello"' in text


def test_second_run_creates_nothing_and_keeps_the_password():
    _, first = bootstrap()
    before = counts()

    text, second = bootstrap("--skip-migrate")

    assert counts() == before
    assert 'Exists: admin user "admin"' in text
    assert 'Exists: example workflow "hello"' in text
    assert "Created" not in text
    assert "unchanged" in second["password"]
    assert get_user_model().objects.get(username="admin").check_password(first["password"].strip())


def test_reset_password_generates_a_new_one():
    _, first = bootstrap()
    old = first["password"].strip()

    _, second = bootstrap("--skip-migrate", "--reset-password")

    new = second["password"].strip()
    assert new != old
    admin = get_user_model().objects.get(username="admin")
    assert admin.check_password(new)
    assert not admin.check_password(old)
    assert get_user_model().objects.count() == 1


def test_password_from_the_environment_is_used_and_not_printed(monkeypatch):
    monkeypatch.setenv("CONVEYOR_ADMIN_PASSWORD", "a-long-chosen-password")

    text, login = bootstrap()

    assert "a-long-chosen-password" not in text
    assert "CONVEYOR_ADMIN_PASSWORD" in login["password"]
    assert get_user_model().objects.get(username="admin").check_password("a-long-chosen-password")

    # A later run with another value sets it (the environment is what the operator asked for).
    monkeypatch.setenv("CONVEYOR_ADMIN_PASSWORD", "another-chosen-password")
    bootstrap("--skip-migrate")
    assert get_user_model().objects.get(username="admin").check_password("another-chosen-password")


def test_a_too_short_environment_password_is_refused(monkeypatch):
    monkeypatch.setenv("CONVEYOR_ADMIN_PASSWORD", "short")
    with pytest.raises(CommandError, match="CONVEYOR_ADMIN_PASSWORD"):
        call_command("bootstrap", "--skip-migrate", stdout=StringIO())
    assert not get_user_model().objects.filter(username="admin").exists()


def test_an_existing_non_admin_user_named_admin_is_made_a_superuser_member():
    get_user_model().objects.create_user(username="admin", password="pw-for-tests-only")

    text, _ = bootstrap("--skip-migrate")

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("pw-for-tests-only")
    assert Member.objects.filter(user=admin, organization__slug="example").exists()
    assert "made an active superuser" in text


class _Recorder:
    def __init__(self):
        self.finished: list[tuple[str, str]] = []

    def start_step(self, step_id, action, position):
        return True

    def finish_step(self, step_id, *, status, output, error_type="", error_message=""):
        self.finished.append((step_id, status))


def test_the_example_definition_succeeds_in_the_engine():
    recorder = _Recorder()
    outcome = run_definition(
        EXAMPLE_DEFINITION,
        RunContext(execution_id="run-1", workflow_id=1, organization_id=1, input=dict(EXAMPLE_INPUT)),
        recorder,
    )
    assert outcome["steps"]["greet"] == {"greeting": "hello world"}
    assert outcome["result"]["message"] == "hello world, from Conveyor"
    assert [status for _, status in recorder.finished] == ["success", "success"]
