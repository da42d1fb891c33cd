"""deploy/prometheus/alerts.yml is valid for Prometheus and its unit tests
(deploy/prometheus/alerts_test.yml) pass: `promtool check rules` and `promtool test rules`
(Debian's prometheus package)."""

import shutil
import subprocess
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is missing: apt-get install -y prometheus (Debian's package carries it)")
    return found


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=RULES_DIR)


def test_the_alert_rules_pass_promtool_check_rules(promtool):
    result = run(promtool, "check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests(promtool):
    result = run(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_the_issue_asks_for_is_defined_and_unit_tested():
    import yaml

    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    tests = yaml.safe_load((RULES_DIR / "alerts_test.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", [])}
    required = {
        "ConveyorErrorBudgetFastBurn",
        "ConveyorErrorBudgetSlowBurn",
        "ConveyorErrorBudgetSteadyBurn",
        "ConveyorUnclassifiedShareRising",
        "ConveyorRunsStuckPending",
        "ConveyorDeadLetterQueueGrowing",
        "ConveyorReaperStopped",
        "ConveyorConsumerNotReceiving",
        "ConveyorSqsQueueMissing",
    }
    assert required <= alerts
    assert alerts <= tested


def test_every_recording_rule_is_unit_tested_by_value():
    import yaml

    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    recorded = {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}
    tests = yaml.safe_load((RULES_DIR / "alerts_test.yml").read_text())
    exprs = " ".join(case["expr"] for test in tests["tests"] for case in test.get("promql_expr_test", []))
    slo = {name for name in recorded if name.startswith("conveyor:slo_")}
    assert slo, "the error budget's recording rules are missing"
    assert {name for name in slo if name not in exprs} == set()
