"""One test per classifier rule, plus the matched-rule record."""

import socket
import sqlite3

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from cryptography.fernet import InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError

from failures import errors
from failures.classifier import ORIGIN_PLATFORM, ORIGIN_STEP, RULE_NAMES, RULES, classify


def test_typed_errors_carry_their_own_classification():
    result = classify(errors.TemplateError("no such key steps.x"), ORIGIN_STEP)
    assert (result.error_type, result.code, result.rule, result.category) == ("user", "", "typed", "workflow")
    assert result.message == "no such key steps.x"
    result = classify(errors.ExternalHTTPError("503 from api.example.com"), ORIGIN_STEP)
    assert (result.error_type, result.category) == ("external", "external_service")
    result = classify(errors.SecretStoreError("keys rotated away"), ORIGIN_STEP)
    assert (result.error_type, result.code, result.category) == ("system", "C-0004", "auth")


@pytest.mark.parametrize("origin", [ORIGIN_STEP, ORIGIN_PLATFORM])
def test_memory_error_is_the_runtime_failing_never_a_user_error(origin):
    result = classify(MemoryError(), origin)
    assert (result.error_type, result.code, result.rule) == ("system", "P-0003", "out-of-memory")


@pytest.mark.parametrize("origin", [ORIGIN_STEP, ORIGIN_PLATFORM])
def test_our_database_failing_is_c0002_wherever_it_is_raised(origin):
    result = classify(OperationalError("server closed the connection unexpectedly"), origin)
    assert (result.error_type, result.code, result.rule) == ("system", "C-0002", "database-error")
    assert classify(sqlite3.OperationalError("database is locked"), origin).code == "C-0002"


def test_a_database_failure_message_is_c0002_even_when_wrapped_in_another_type():
    result = classify(RuntimeError("terminating connection due to administrator command"), ORIGIN_PLATFORM)
    assert (result.code, result.rule) == ("C-0002", "database-message")


def test_an_undecryptable_secret_is_a_secret_store_failure():
    result = classify(InvalidToken(), ORIGIN_STEP)
    assert (result.error_type, result.code, result.rule) == ("system", "C-0004", "secret-store")


def test_missing_configuration_in_platform_code_is_c0003():
    result = classify(ImproperlyConfigured("CONVEYOR_X missing"), ORIGIN_PLATFORM)
    assert (result.code, result.rule) == ("C-0003", "configuration")
    assert classify(ModuleNotFoundError("no module named x"), ORIGIN_PLATFORM).code == "C-0003"


def test_platform_network_failure_is_n0002():
    result = classify(socket.gaierror("Name or service not known"), ORIGIN_PLATFORM)
    assert (result.error_type, result.code, result.rule) == ("system", "N-0002", "platform-network")


def test_the_users_endpoint_failing_is_external():
    result = classify(ConnectionRefusedError("refused"), ORIGIN_STEP)
    assert (result.error_type, result.code, result.rule) == ("external", "", "step-network")


def test_any_other_exception_from_a_step_is_the_workflows_own_fault():
    result = classify(ValueError("negative amount"), ORIGIN_STEP)
    assert (result.error_type, result.rule, result.message) == ("user", "step-exception", "ValueError: negative amount")


@pytest.mark.parametrize("origin", [ORIGIN_STEP, ORIGIN_PLATFORM])
def test_a_pool_process_lost_under_its_run_is_p0003_worker_lost(origin):
    result = classify(WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL) Job: 0."), origin)
    assert (result.error_type, result.code, result.rule, result.category) == (
        "system",
        "P-0003",
        "worker-lost",
        "infrastructure",
    )
    assert "SIGKILL" in result.message


@pytest.mark.parametrize("exc", [SoftTimeLimitExceeded(), TimeLimitExceeded(30.0)])
@pytest.mark.parametrize("origin", [ORIGIN_STEP, ORIGIN_PLATFORM])
def test_celerys_time_limits_are_e0001_never_the_steps_own_fault(exc, origin):
    result = classify(exc, origin)
    assert (result.error_type, result.code, result.rule) == ("system", "E-0001", "celery-time-limit")


def test_an_unmatched_platform_exception_falls_through_to_c0001_and_says_so():
    result = classify(KeyError("state"), ORIGIN_PLATFORM)
    assert (result.error_type, result.code, result.rule, result.category) == (
        "system",
        "C-0001",
        "unclassified",
        "workflow_engine",
    )


def test_rules_are_ordered_and_named_uniquely():
    assert len(RULE_NAMES) == len(set(RULE_NAMES))
    assert RULES[-1].name == "unclassified"


def test_an_unknown_origin_is_refused():
    with pytest.raises(ValueError):
        classify(ValueError(), "somewhere")
