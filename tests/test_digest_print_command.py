"""`manage.py print_digest <org-slug> --period daily|weekly` prints an organization's
digest without sending it."""

from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from observability.models import FailureDigest
from tests.factories import make_execution, make_org, make_workflow

pytestmark = pytest.mark.django_db


def test_the_command_prints_the_weekly_digest_of_an_organization(capsys, mailoutbox):
    org = make_org("acme")
    workflow = make_workflow(org, name="billing")
    for day in (1, 3):
        make_execution(workflow, status="success", finished_at=datetime(2030, 1, day, 9, tzinfo=UTC))
    make_execution(workflow, status="error", error_type="user", error_message="bad input",
                   finished_at=datetime(2030, 1, 2, 9, tzinfo=UTC))  # fmt: skip

    call_command("print_digest", "acme", "--period", "weekly", "--until", "2030-01-09")

    out = capsys.readouterr().out
    assert "Weekly: 2029-12-31 00:00 UTC to 2030-01-07 00:00 UTC" in out
    assert "Success rate: 66.7% (2 of 3" in out
    assert "billing: 1 failed (1 workflow errors, 0 system errors)" in out
    assert mailoutbox == [] and not FailureDigest.objects.exists()


def test_an_unknown_organization_is_an_error():
    with pytest.raises(CommandError, match="no organization with slug 'nobody'"):
        call_command("print_digest", "nobody", "--period", "daily")
