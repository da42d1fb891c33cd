import time

import pytest

from failures.classifier import ORIGIN_STEP, classify
from failures.errors import RunDeadlineExceeded, StepConfigError
from workflows.actions.delay import DelayAction
from workflows.actions.registry import StepContext
from workflows.engine import RunContext, RunFailed, run_definition


def ctx(deadline=None):
    return StepContext(execution_id="run-1", step_id="wait", deadline=deadline)


class Recorder:
    def start_step(self, step_id, action, position):
        return True

    def finish_step(self, step_id, *, status, output, error_type="", error_message=""):
        pass


def test_a_delay_sleeps_in_place_for_the_requested_time():
    started = time.monotonic()
    output = DelayAction().run({"seconds": 0.2}, ctx())
    elapsed = time.monotonic() - started
    assert 0.19 <= elapsed < 1.0
    assert output == {"requested_s": 0.2, "slept_s": 0.2, "capped": False}


def test_a_delay_longer_than_the_platforms_cap_is_cut_to_the_cap(settings):
    settings.DELAY_ACTION_MAX_S = 0.2
    started = time.monotonic()
    output = DelayAction().run({"seconds": 30}, ctx())
    assert time.monotonic() - started < 1.0
    assert output == {"requested_s": 30, "slept_s": 0.2, "capped": True}


def test_a_delay_that_would_pass_the_runs_deadline_fails_at_once_as_a_deadline_error():
    started = time.monotonic()
    with pytest.raises(RunDeadlineExceeded, match="would pass the run's deadline") as raised:
        DelayAction().run({"seconds": 5}, ctx(deadline=time.monotonic() + 0.5))
    assert time.monotonic() - started < 0.2
    assert classify(raised.value, ORIGIN_STEP).code == "E-0001"


def test_a_delay_within_the_deadline_runs():
    assert DelayAction().run({"seconds": 0.05}, ctx(deadline=time.monotonic() + 5))["slept_s"] == 0.05


def test_validation_refuses_negative_or_non_numeric_seconds_and_leaves_the_cap_to_run_time(settings):
    settings.DELAY_ACTION_MAX_S = 60
    action = DelayAction()
    assert action.validate_config({"seconds": -1}) == {"seconds": "must be at least 0"}
    assert action.validate_config({"seconds": 3600}) == {}
    assert action.validate_config({"seconds": "soon"}) == {"seconds": "must be a number"}
    assert action.validate_config({}) == {"seconds": "is required"}
    assert action.validate_config({"seconds": "{{ input.wait }}"}) == {}


def test_a_templated_delay_is_checked_when_it_is_known():
    with pytest.raises(StepConfigError):
        DelayAction().run({"seconds": "ten"}, ctx())


def test_in_a_run_a_templated_delay_over_the_cap_is_capped(settings):
    settings.DELAY_ACTION_MAX_S = 0.1
    definition = {"steps": [{"id": "wait", "action": "delay", "config": {"seconds": "{{ input.wait }}"}}]}
    result = run_definition(definition, RunContext("run-1", 1, 1, input={"wait": 100}), Recorder())
    assert result["result"] == {"requested_s": 100, "slept_s": 0.1, "capped": True}


def test_in_a_run_a_delay_past_the_deadline_is_a_system_deadline_error():
    definition = {"steps": [{"id": "wait", "action": "delay", "config": {"seconds": 3}}]}
    context = RunContext("run-1", 1, 1, deadline=time.monotonic() + 1)
    with pytest.raises(RunFailed) as raised:
        run_definition(definition, context, Recorder())
    assert (raised.value.classification.error_type, raised.value.classification.code) == ("system", "E-0001")
    assert raised.value.step_id == "wait"
