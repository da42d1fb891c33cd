"""The health page's objective (CONVEYOR_SLO_OBJECTIVE) and the alerts' recording rule
(conveyor:slo_objective:ratio in deploy/prometheus/alerts.yml) ship the same default, so the
page and the burn-rate alerts measure the same budget; a bad objective stops the process."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"


def rule_objective() -> float:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("record") == "conveyor:slo_objective:ratio":
                expr = rule["expr"].strip()
                assert expr.startswith("vector(") and expr.endswith(")"), expr
                return float(expr[len("vector(") : -1])
    raise AssertionError("no conveyor:slo_objective:ratio rule")


def settings_objective(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_SLO_OBJECTIVE"}
    if value is not None:
        env["CONVEYOR_SLO_OBJECTIVE"] = value
    code = "import django; django.setup(); from django.conf import settings; print(settings.SLO_OBJECTIVE)"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_default_objective_is_the_rules_objective():
    result = settings_objective(None)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) == rule_objective() == 0.995


def test_an_objective_outside_zero_and_one_stops_the_process_naming_the_variable():
    for bad in ("1", "99.5", "0"):
        result = settings_objective(bad)
        assert result.returncode != 0
        assert "CONVEYOR_SLO_OBJECTIVE" in result.stderr and "between 0 and 1" in result.stderr
