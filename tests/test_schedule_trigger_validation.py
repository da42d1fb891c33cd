"""A schedule's cron expression and time zone are validated when the workflow is saved,
with an error that says what is wrong."""

import pytest
from django.core.exceptions import ValidationError

from tests.factories import NOOP_DEFINITION, make_org
from workflows.models import Workflow
from workflows.triggers import InvalidTrigger, validate_trigger


def errors_of(config: dict, trigger_type: str = "schedule") -> dict[str, str]:
    with pytest.raises(InvalidTrigger) as refused:
        validate_trigger(trigger_type, config)
    return refused.value.errors


def test_a_valid_schedule_is_normalized_with_utc_as_the_default_zone():
    assert validate_trigger("schedule", {"cron": "*/5  *  * * *"}) == {"cron": "*/5 * * * *", "timezone": "UTC"}
    assert validate_trigger("schedule", {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}) == {
        "cron": "0 9 * * 1-5",
        "timezone": "Europe/Paris",
    }
    assert validate_trigger("schedule", {"cron": "@Hourly"}) == {"cron": "@hourly", "timezone": "UTC"}


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("61 * * * *", "is not a valid cron expression"),
        ("* * * *", "has 4 fields; a cron expression has five"),
        ("*/5 * * * * *", "has 6 fields"),
        ("@reboot", "unknown alias"),
        ("", "must be a cron expression"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_a_bad_cron_expression_is_refused_with_the_reason(cron, says):
    assert says in errors_of({"cron": cron})["trigger_config.cron"]


@pytest.mark.parametrize(
    ("zone", "says"),
    [
        ("Europe/Pariss", "unknown time zone 'Europe/Pariss'"),
        ("../../etc/passwd", "is not an IANA time zone name"),
        ("", "must be an IANA time zone name"),
        (2, "must be an IANA time zone name"),
    ],
)
def test_a_bad_time_zone_is_refused_with_the_reason(zone, says):
    assert says in errors_of({"cron": "* * * * *", "timezone": zone})["trigger_config.timezone"]


def test_every_problem_is_reported_at_once_and_unknown_keys_are_named():
    errors = errors_of({"cron": "nope", "timezone": "Mars/Base", "every": 5})
    assert set(errors) == {"trigger_config.cron", "trigger_config.timezone", "trigger_config.every"}
    assert "unknown key (allowed: cron, timezone)" in errors["trigger_config.every"]


def test_re_runs_and_retries_are_not_workflow_triggers():
    assert "is not a workflow trigger" in errors_of({}, trigger_type="rerun")["trigger_type"]
    assert "is not a workflow trigger" in errors_of({}, trigger_type="retry")["trigger_type"]


def test_event_and_manual_triggers_take_no_config():
    assert validate_trigger("event", {}) == {} and validate_trigger("manual", None) == {}
    assert "unknown key" in errors_of({"cron": "* * * * *"}, trigger_type="event")["trigger_config.cron"]


@pytest.mark.django_db
def test_saving_a_workflow_with_a_bad_schedule_fails_with_a_clear_error():
    workflow = Workflow(
        organization=make_org(),
        name="nightly",
        definition=NOOP_DEFINITION,
        trigger_type="schedule",
        trigger_config={"cron": "0 25 * * *", "timezone": "Europe/Paris"},
    )
    with pytest.raises(ValidationError) as refused:
        workflow.full_clean()
    assert (
        "trigger_config.cron: '0 25 * * *' is not a valid cron expression"
        in refused.value.message_dict["trigger_config"][0]
    )
    with pytest.raises(InvalidTrigger):
        workflow.save()
    assert not Workflow.objects.filter(name="nightly").exists()


@pytest.mark.django_db
def test_saving_a_valid_schedule_stores_its_normalized_config():
    workflow = Workflow.objects.create(
        organization=make_org(),
        name="nightly",
        definition=NOOP_DEFINITION,
        trigger_type="schedule",
        trigger_config={"cron": "30   2 * * *"},
    )
    workflow.refresh_from_db()
    assert workflow.trigger_config == {"cron": "30 2 * * *", "timezone": "UTC"}
