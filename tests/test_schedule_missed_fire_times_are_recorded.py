"""Fire times an outage kept from being dispatched are recorded as runs of their own:
`system_error` CS-0002, no work done, written through the status writer, visible in the
metrics; capped per schedule with one summary record for the rest; never run twice, never
replayed by the system-error retry policy, and an operator may re-run one."""

import pytest
import time_machine
from prometheus_client import REGISTRY

from executions.models import Execution, Transition
from scheduler.retry_policy import NotEligible, check_eligible
from tests.clock import tick_at, utc
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db


def missed_counter() -> float:
    labels = {"producer": "schedule", "code": "CS-0002"}
    return REGISTRY.get_sample_value("conveyor_missed_dispatches_total", labels) or 0.0


@pytest.fixture
def every_minute(settings):
    settings.SCHEDULE_CATCHUP_WINDOW_S = 3600
    with time_machine.travel(utc(2026, 6, 1, 9, 59, 30), tick=False):
        workflow = make_workflow(
            trigger_type="schedule",
            trigger_config={"cron": "* * * * *"},
            system_retry_max_attempts=3,
        )
    assert tick_at(utc(2026, 6, 1, 10, 0, 2)).fired  # 10:00 runs; the dispatcher is up to date
    return workflow


def test_each_fire_time_of_an_outage_is_recorded_once_as_a_system_error_that_did_no_work(every_minute):
    before = missed_counter()

    # No tick from 10:00:02 to 10:05:10 (an SQS outage): 10:01 to 10:04 were missed, 10:05 runs.
    report = tick_at(utc(2026, 6, 1, 10, 5, 10))
    again = tick_at(utc(2026, 6, 1, 10, 5, 20))

    assert report.fired == [f"schedule:{every_minute.pk}:2026-06-01T10:05:00Z"]
    assert report.missed == 4 and again.missed == 0 and again.fired == []
    missed = list(Execution.objects.filter(workflow=every_minute, error_code="CS-0002").order_by("dispatch_key"))
    assert [m.input["schedule"]["fire_time"] for m in missed] == [f"2026-06-01T10:0{i}:00Z" for i in range(1, 5)]
    for run in missed:
        assert (run.status, run.error_type, run.error_category) == ("system_error", "system", "infrastructure")
        assert run.trigger_type == "schedule" and run.steps_started == 0 and run.finished_at is not None
        assert "not of your workflow" in run.customer_message and "CS-0002" in run.customer_message
        assert run.safe_to_rerun
        moves = list(Transition.objects.filter(execution=run).order_by("at", "id").values_list("move", "actor"))
        assert moves == [("create", "producer"), ("fail-before-start", "producer")]
    assert missed_counter() == before + 4
    keys = list(Execution.objects.filter(workflow=every_minute).values_list("dispatch_key", flat=True))
    assert len(keys) == len(set(keys)) == 6  # 10:00 and 10:05 ran, 10:01-10:04 recorded: none twice


def test_beyond_the_cap_the_older_fire_times_are_counted_in_one_summary_record(every_minute, settings):
    settings.MISSED_RUN_RECORDS_MAX = 3
    before = missed_counter()

    report = tick_at(utc(2026, 6, 1, 10, 30, 5))  # 10:01 .. 10:29 missed (29), 10:30 runs

    assert report.missed == 29
    records = Execution.objects.filter(workflow=every_minute, error_code="CS-0002")
    singles = sorted(r.input["schedule"]["fire_time"] for r in records if r.input.get("missed") is True)
    assert singles == ["2026-06-01T10:27:00Z", "2026-06-01T10:28:00Z", "2026-06-01T10:29:00Z"]
    (summary,) = [r for r in records if isinstance(r.input.get("missed"), dict)]
    assert summary.input["missed"] == {"count": 26, "first": "2026-06-01T10:01:00Z", "last": "2026-06-01T10:26:00Z"}
    assert summary.status == "system_error" and "26 fire times" in summary.error_message
    assert missed_counter() == before + 29


def test_the_retry_policy_never_replays_a_missed_fire_time_but_an_operator_may_rerun_it(every_minute):
    from executions.rerun import rerun

    tick_at(utc(2026, 6, 1, 10, 3, 5))
    records = Execution.objects.filter(workflow=every_minute, error_code="CS-0002").select_related("workflow")
    record = records.order_by("dispatch_key").first()

    with pytest.raises(NotEligible, match="missed fire time"):
        check_eligible(record, utc(2026, 6, 2))

    child = rerun(record, actor="operator")
    assert child.rerun_of_id == record.pk and child.input["schedule"]["fire_time"] == "2026-06-01T10:01:00Z"
