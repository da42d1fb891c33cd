"""The error budget's rules (deploy/prometheus/alerts.yml) select conveyor_runs_finished_total
by status in PromQL, where failures.statuses cannot reach: they count the statuses the
success rate counts, and only system_error as the platform's failure."""

import re
from pathlib import Path

import yaml

from failures.statuses import COUNTED_FOR_SUCCESS_RATE, TERMINAL, ErrorType, status_for_error_type

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "alerts.yml"
SELECTOR = re.compile(r'conveyor_runs_finished_total\{status(=~|=)"([^"]*)"\}')


def selectors() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    found = [match.groups() for expr in exprs for match in SELECTOR.finditer(expr)]
    assert found, "no rule reads conveyor_runs_finished_total"
    return found


def test_the_sli_counts_the_statuses_the_success_rate_counts():
    denominators = {frozenset(value.split("|")) for op, value in selectors() if op == "=~"}
    assert denominators == {COUNTED_FOR_SUCCESS_RATE}
    assert COUNTED_FOR_SUCCESS_RATE <= TERMINAL


def test_only_system_error_burns_the_budget():
    numerators = {value for op, value in selectors() if op == "="}
    assert numerators == {status_for_error_type(ErrorType.SYSTEM)}
