"""`manage.py bootstrap`: migrate, then create (once) what a newcomer needs to try Conveyor.

An organization "Example", an admin superuser (a member of it) whose generated password
is printed once — or taken from CONVEYOR_ADMIN_PASSWORD — and the example workflow
"hello" (manual trigger, transform steps only, so it needs no network).

Idempotent: a second run creates nothing, says what already exists and leaves the admin's
password alone unless --reset-password is given.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from failures.statuses import TriggerType
from tenancy.models import Member, Organization
from workflows.models import Workflow

ORGANIZATION_NAME = "Example"
ORGANIZATION_SLUG = "example"
DEFAULT_USERNAME = "admin"
DEFAULT_ADMIN_URL = "http://127.0.0.1:8000/admin/"
PASSWORD_ENV = "CONVEYOR_ADMIN_PASSWORD"

EXAMPLE_WORKFLOW_NAME = "hello"
# Transform steps only: the example must succeed on a machine without network access.
EXAMPLE_DEFINITION: dict = {
    "steps": [
        {
            "id": "greet",
            "action": "transform",
            "config": {"output": {"greeting": "hello {{ input.name }}"}},
        },
        {
            "id": "summary",
            "action": "transform",
            "config": {
                "output": {"message": "{{ steps.greet.output.greeting }}, from Conveyor", "run": "{{ run.id }}"}
            },
        },
    ]
}
EXAMPLE_INPUT: dict = {"name": "world"}


@dataclass
class BootstrapResult:
    admin_url: str
    username: str
    password: str | None = None  # set only when it was generated or reset by this run
    password_source: str = "unchanged"  # generated | reset | environment | unchanged
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    workflow_id: int | None = None

    def credentials_line(self) -> str:
        if self.password is not None:
            secret = self.password
        elif self.password_source == "environment":
            secret = f"(the value of {PASSWORD_ENV})"
        else:
            secret = (
                "(unchanged: printed when it was created; `make up PLATFORM_ARGS=--reset-password` "
                "or `manage.py bootstrap --reset-password` sets a new one)"
            )
        return f"Admin login: {self.admin_url}  username: {self.username}  password: {secret}"


def _new_password() -> str:
    return secrets.token_urlsafe(12)


def bootstrap(
    *,
    admin_url: str = DEFAULT_ADMIN_URL,
    username: str = DEFAULT_USERNAME,
    reset_password: bool = False,
    env_password: str | None = None,
) -> BootstrapResult:
    """Create the example organization, admin and workflow if missing (the schema must exist)."""
    result = BootstrapResult(admin_url=admin_url, username=username)
    if env_password is not None:
        try:
            validate_password(env_password)
        except ValidationError as exc:
            raise CommandError(f"{PASSWORD_ENV} is not acceptable: {' '.join(exc.messages)}") from None

    User = get_user_model()
    with transaction.atomic():
        org, created = Organization.objects.get_or_create(slug=ORGANIZATION_SLUG, defaults={"name": ORGANIZATION_NAME})
        (result.created if created else result.existing).append(f'organization "{org.name}"')

        user = User.objects.filter(username=username).first()
        if user is None:
            password = env_password if env_password is not None else _new_password()
            user = User.objects.create_superuser(username=username, email=f"{username}@example.com", password=password)
            result.created.append(f'admin user "{username}"')
            if env_password is not None:
                result.password_source = "environment"
            else:
                result.password, result.password_source = password, "generated"
        else:
            result.existing.append(f'admin user "{username}"')
            changed = []
            if not (user.is_staff and user.is_superuser and user.is_active):
                user.is_staff = user.is_superuser = user.is_active = True
                changed.append("made an active superuser")
            if reset_password:
                if env_password is not None:
                    user.set_password(env_password)
                    result.password_source = "environment"
                else:
                    result.password = _new_password()
                    user.set_password(result.password)
                    result.password_source = "reset"
                changed.append("password reset")
            elif env_password is not None:
                result.password_source = "environment"
                if not user.check_password(env_password):
                    user.set_password(env_password)
                    changed.append(f"password set from {PASSWORD_ENV}")
            if changed:
                user.save()
                result.existing[-1] += f" ({', '.join(changed)})"

        if Member.objects.filter(user=user).exists():
            result.existing.append(f'membership of "{username}"')
        else:
            Member.objects.create(user=user, organization=org)
            result.created.append(f'membership of "{username}" in "{org.name}"')

        workflow = Workflow.objects.alive().filter(organization=org, name=EXAMPLE_WORKFLOW_NAME).first()
        if workflow is None:
            workflow = Workflow.objects.create(
                organization=org,
                name=EXAMPLE_WORKFLOW_NAME,
                description="Example: two transform steps that greet {{ input.name }}. Run it with "
                '{"name": "world"} as its input.',
                trigger_type=TriggerType.MANUAL,
                definition=EXAMPLE_DEFINITION,
            )
            result.created.append(f'example workflow "{EXAMPLE_WORKFLOW_NAME}"')
        else:
            result.existing.append(f'example workflow "{EXAMPLE_WORKFLOW_NAME}"')
        result.workflow_id = workflow.pk
    return result


class Command(BaseCommand):
    help = (
        "Migrate the database and create, if missing, the Example organization, an admin superuser "
        "(its generated password is printed, or taken from CONVEYOR_ADMIN_PASSWORD) and the example "
        'workflow "hello". Safe to run again.'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--admin-url",
            default=os.environ.get("CONVEYOR_ADMIN_URL", DEFAULT_ADMIN_URL),
            help="Where the admin is served, for the printed login line (default: %(default)s).",
        )
        parser.add_argument("--username", default=DEFAULT_USERNAME, help="Admin username (default: %(default)s).")
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help=f"Give an existing admin a new generated password (or {PASSWORD_ENV} when set).",
        )
        parser.add_argument("--skip-migrate", action="store_true", help="Do not run migrations first.")

    def handle(self, *args, **options) -> None:
        verbosity = options["verbosity"]
        if not options["skip_migrate"]:
            call_command("migrate", interactive=False, verbosity=max(verbosity - 1, 0), stdout=self.stdout)
            self.stdout.write(f"Database migrated ({_describe_database()})")
        result = bootstrap(
            admin_url=options["admin_url"],
            username=options["username"],
            reset_password=options["reset_password"],
            env_password=os.environ.get(PASSWORD_ENV) or None,
        )
        for item in result.created:
            self.stdout.write(self.style.SUCCESS(f"Created {item}"))
        for item in result.existing:
            self.stdout.write(f"Exists: {item}")
        line = result.credentials_line()
        self.stdout.write(self.style.WARNING(line) if result.password else line)


def _describe_database() -> str:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"SQLite at {settings_dict['NAME']}"
    host = settings_dict.get("HOST") or "localhost"
    return f"{connection.vendor} {settings_dict.get('NAME')} on {host}"
