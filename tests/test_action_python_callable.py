import pytest

from failures.classifier import ORIGIN_STEP, classify
from failures.errors import ConfigurationFault, StepConfigError, UserCodeError
from workflows.actions.python_callable import PythonCallableAction
from workflows.actions.registry import StepContext

CTX = StepContext(execution_id="run-1", step_id="py")
EXAMPLES = "workflows.actions.examples"


@pytest.fixture(autouse=True)
def allow_list(settings):
    settings.PYTHON_CALLABLE_ALLOWLIST = [
        f"{EXAMPLES}.add_numbers",
        f"{EXAMPLES}.echo",
        f"{EXAMPLES}.fail",
        f"{EXAMPLES}.unserialisable",
        f"{EXAMPLES}.read_with_wrong_key",
        f"{EXAMPLES}.database_unavailable",
        f"{EXAMPLES}.query_missing_table",
        f"{EXAMPLES}.does_not_exist",
    ]
    return settings


def run(name, **kwargs):
    return PythonCallableAction().run({"callable": f"{EXAMPLES}.{name}", "kwargs": kwargs}, CTX)


def test_an_allow_listed_callable_runs_with_its_keyword_arguments():
    assert run("add_numbers", a=2, b=3.5) == {"sum": 5.5}
    assert run("echo", x=[1, {"y": None}]) == {"x": [1, {"y": None}]}


def test_a_callable_outside_the_allow_list_is_refused_by_validation_naming_the_allowed_ones(settings):
    settings.PYTHON_CALLABLE_ALLOWLIST = [f"{EXAMPLES}.add_numbers"]
    errors = PythonCallableAction().validate_config({"callable": "os.system", "kwargs": {"command": "id"}})
    assert errors == {"callable": f"must be one of the allowed callables: {EXAMPLES}.add_numbers"}


def test_a_templated_callable_path_is_refused():
    errors = PythonCallableAction().validate_config({"callable": "{{ input.fn }}"})
    assert list(errors) == ["callable"]


def test_the_allow_list_is_checked_again_when_the_step_runs(settings):
    config = {"callable": f"{EXAMPLES}.add_numbers", "kwargs": {"a": 1, "b": 2}}
    assert PythonCallableAction().validate_config(config) == {}
    settings.PYTHON_CALLABLE_ALLOWLIST = [f"{EXAMPLES}.echo"]
    with pytest.raises(StepConfigError, match="not in the platform's allow-list"):
        PythonCallableAction().run(config, CTX)


def test_an_exception_from_the_callable_is_the_workflows_error_with_its_message():
    with pytest.raises(UserCodeError) as raised:
        run("fail", message="division went wrong")
    assert raised.value.message == f"{EXAMPLES}.fail raised ValueError: division went wrong"
    assert classify(raised.value, ORIGIN_STEP).error_type == "user"


def test_wrong_arguments_are_the_workflows_error():
    with pytest.raises(UserCodeError, match="TypeError"):
        run("add_numbers", a=1)


def test_a_result_that_is_not_json_is_the_workflows_error():
    with pytest.raises(UserCodeError, match="not JSON"):
        run("unserialisable")


def test_a_secret_store_failure_inside_the_callable_stays_a_system_error():
    with pytest.raises(Exception) as raised:
        run("read_with_wrong_key")
    classification = classify(raised.value, ORIGIN_STEP)
    assert (classification.error_type, classification.code, classification.rule) == ("system", "C-0004", "secret-store")


def test_a_database_failure_inside_the_callable_stays_a_system_error():
    with pytest.raises(Exception) as raised:
        run("database_unavailable")
    classification = classify(raised.value, ORIGIN_STEP)
    assert (classification.error_type, classification.code) == ("system", "C-0002")


@pytest.mark.django_db
def test_a_real_query_failing_inside_the_callable_is_a_database_error():
    with pytest.raises(Exception) as raised:
        run("query_missing_table")
    classification = classify(raised.value, ORIGIN_STEP)
    assert (classification.error_type, classification.code, classification.rule) == (
        "system",
        "C-0002",
        "database-error",
    )


def test_an_allow_listed_entry_that_does_not_import_is_the_platforms_configuration_fault():
    with pytest.raises(ConfigurationFault) as raised:
        run("does_not_exist")
    assert classify(raised.value, ORIGIN_STEP).code == "C-0003"
