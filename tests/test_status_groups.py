from failures.statuses import (
    ALL_STATUSES,
    ERROR_STATUSES,
    GROUPS,
    IN_PROGRESS,
    TERMINAL,
    ErrorType,
    ExecutionStatus,
    parse_statuses,
    status_for_error_type,
)


def test_in_progress_and_terminal_partition_every_status():
    assert IN_PROGRESS | TERMINAL == set(ALL_STATUSES)
    assert not IN_PROGRESS & TERMINAL


def test_every_group_only_names_known_statuses():
    for name, group in GROUPS.items():
        assert group <= set(ALL_STATUSES), name


def test_error_statuses_hold_both_error_and_system_error():
    assert ERROR_STATUSES == {ExecutionStatus.ERROR, ExecutionStatus.SYSTEM_ERROR}


def test_system_errors_become_system_error_and_others_become_error():
    assert status_for_error_type(ErrorType.SYSTEM) == "system_error"
    assert status_for_error_type(ErrorType.USER) == "error"
    assert status_for_error_type(ErrorType.EXTERNAL) == "error"


def test_unknown_error_type_is_refused():
    import pytest

    with pytest.raises(ValueError):
        status_for_error_type("cosmic-ray")


def test_status_filter_accepts_system_error_and_names_allowed_values_on_unknown():
    import pytest

    assert parse_statuses("error,system_error") == ["error", "system_error"]
    with pytest.raises(ValueError, match="allowed: pending, running, success, error, system_error"):
        parse_statuses("failed")
