"""Bad settings fail at start with a clear message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from config.checks import secret_invariants, threshold_invariants
from config.env import env_bool, env_choice, env_float, env_int, env_list

ROOT = Path(__file__).resolve().parents[1]


def test_a_non_integer_names_the_variable(monkeypatch):
    monkeypatch.setenv("CONVEYOR_X", "ten")
    with pytest.raises(ImproperlyConfigured, match="CONVEYOR_X='ten' is not an integer"):
        env_int("CONVEYOR_X", 1)


def test_bounds_are_enforced(monkeypatch):
    monkeypatch.setenv("CONVEYOR_X", "901")
    with pytest.raises(ImproperlyConfigured, match="above its maximum 900"):
        env_int("CONVEYOR_X", 1, maximum=900)
    monkeypatch.setenv("CONVEYOR_Y", "-1")
    with pytest.raises(ImproperlyConfigured, match="below its minimum"):
        env_float("CONVEYOR_Y", 1.0, minimum=0.0)


def test_booleans_choices_and_lists_are_parsed_strictly(monkeypatch):
    monkeypatch.setenv("CONVEYOR_B", "maybe")
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        env_bool("CONVEYOR_B", False)
    monkeypatch.setenv("CONVEYOR_C", "sideways")
    with pytest.raises(ImproperlyConfigured, match="not one of"):
        env_choice("CONVEYOR_C", "inline", {"inline", "isolated"})
    monkeypatch.setenv("CONVEYOR_L", " a, ,b ")
    assert env_list("CONVEYOR_L") == ["a", "b"]


def _start(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "DJANGO_", "PYTEST"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_a_process_refuses_to_start_on_a_malformed_database_url():
    result = _start(DJANGO_SECRET_KEY="k" * 50, DATABASE_URL="mysql://nope")
    assert result.returncode != 0
    assert "DATABASE_URL must be sqlite:// or postgres://" in result.stderr


def test_a_process_refuses_to_start_without_a_secret_key_outside_development():
    result = _start(DATABASE_URL="sqlite:////tmp/x.sqlite3")
    assert result.returncode != 0 and "DJANGO_SECRET_KEY must be set" in result.stderr


def test_a_requeue_delay_above_a_third_of_the_start_threshold_fails_the_checks():
    result = _start(
        CONVEYOR_EMBEDDED="1", CONVEYOR_START_THRESHOLD_S="60", CONVEYOR_REQUEUE_DELAY_S="30",
        DATABASE_URL="sqlite:////tmp/x.sqlite3",
    )  # fmt: skip
    assert result.returncode != 0 and "conveyor.E002" in result.stderr


@override_settings(HEARTBEAT_INTERVAL_S=10, STALE_AFTER_S=30)
def test_a_stale_threshold_below_five_heartbeats_is_an_error():
    assert [e.id for e in threshold_invariants(None)] == ["conveyor.E001"]


@override_settings(SECRETS_ENCRYPTION_KEYS=["not-a-fernet-key"])
def test_an_invalid_secret_encryption_key_is_an_error():
    assert "conveyor.E010" in [e.id for e in secret_invariants(None)]


@override_settings(FAULT_INJECTION=["everywhere"])
def test_an_unknown_fault_point_is_an_error():
    assert "conveyor.E014" in [e.id for e in secret_invariants(None)]


def test_the_default_settings_pass_every_check():
    assert threshold_invariants(None) == []
    assert [e for e in secret_invariants(None) if e.level >= 40] == []
