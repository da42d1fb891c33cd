"""Every catalogue code is complete, and customer messages never leak internals."""

import re

import pytest

from failures.catalogue import (
    AUTO_RETRIED_CODES,
    CATALOGUE,
    DID_NO_WORK_CODES,
    MISSED_DISPATCH_CODES,
    PRODUCER_CODES,
    SYSTEM_CATEGORIES,
    customer_message,
    safe_to_rerun,
)
from failures.statuses import TriggerType

EXPECTED_CODES = {
    "C-0001", "C-0002", "C-0003", "C-0004", "E-0001", "E-0002", "E-0003", "E-0004", "N-0001", "N-0002",
    "P-0001", "P-0002", "P-0003", "P-0004", "P-0005", "CS-0001", "BS-0001", "ES-0001", "MS-0001",
    "CS-0002", "BS-0002",
}  # fmt: skip


def test_the_catalogue_holds_exactly_the_designed_codes():
    assert set(CATALOGUE) == EXPECTED_CODES


@pytest.mark.parametrize("code", sorted(EXPECTED_CODES))
def test_every_code_has_category_retry_flag_message_and_safe_to_rerun_flag(code):
    entry = CATALOGUE[code]
    assert re.fullmatch(r"[A-Z]{1,2}-\d{4}", entry.code)
    assert entry.category in SYSTEM_CATEGORIES
    assert isinstance(entry.retryable, bool)
    assert isinstance(entry.did_no_work, bool)
    assert entry.customer_message.endswith(".")
    assert "not of your workflow" in entry.customer_message


def test_only_runs_that_provably_did_no_work_are_called_safe_to_rerun():
    assert DID_NO_WORK_CODES == {
        "P-0001", "P-0002", "P-0005", "CS-0001", "BS-0001", "ES-0001", "MS-0001", "CS-0002", "BS-0002",
    }  # fmt: skip
    for code in DID_NO_WORK_CODES:
        assert "safe to re-run" in CATALOGUE[code].customer_message
    for code in set(CATALOGUE) - DID_NO_WORK_CODES:
        assert "may have partly run" in CATALOGUE[code].customer_message


def test_the_retry_policy_may_retry_runs_that_did_no_work_but_never_replays_missed_fire_times():
    assert AUTO_RETRIED_CODES == DID_NO_WORK_CODES - {"CS-0002", "BS-0002"}
    assert MISSED_DISPATCH_CODES == {"CS-0002", "BS-0002"}


def test_every_trigger_type_has_a_producer_code():
    assert set(PRODUCER_CODES) == set(TriggerType.values)


def test_a_system_error_shows_the_catalogue_text_and_code_never_the_internal_message():
    internal = "psycopg.OperationalError: connection to server at db-7.internal (10.2.3.4) failed; SELECT * FROM x"
    shown = customer_message(status="system_error", error_type="system", error_code="C-0002", error_message=internal)
    assert "C-0002" in shown and "database" in shown
    assert "db-7" not in shown and "SELECT" not in shown and "10.2.3.4" not in shown


def test_an_unknown_code_on_a_system_error_falls_back_to_the_unclassified_message():
    shown = customer_message(status="system_error", error_type="system", error_code="Z-9999", error_message="x")
    assert "C-0001" in shown


def test_user_and_external_errors_show_their_real_message():
    assert customer_message(status="error", error_type="user", error_code="", error_message="bad") == "bad"
    assert customer_message(status="error", error_type="external", error_code="", error_message="503") == "503"


def test_safe_to_rerun_is_never_said_of_user_errors():
    assert not safe_to_rerun(error_type="user", error_code="P-0005")
    assert safe_to_rerun(error_type="system", error_code="P-0005")
    assert not safe_to_rerun(error_type="system", error_code="P-0003")
