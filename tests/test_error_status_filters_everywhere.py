"""No filter on an error status matches `error` alone.

The anchor project shipped four fixes because a filter, a terminal set, an API allow-list
and the digest each kept their own list of statuses and forgot `system_error`. This test
walks every module of the apps that read runs (executions/, pipeline/, scheduler/,
reaper/, observability/ and frontend/) and finds every place that filters runs (or transitions) on a status:

- ORM lookups: ``status=``, ``status__in=``, ``to_status=``... in ``filter()``,
  ``exclude()``, ``get()``, ``Q()`` and ``When()`` (an ``|`` of ``Q`` objects counts as one);
- comparisons of a status with ``==``, ``!=``, ``in``, ``not in`` (an ``or``/``and`` of
  comparisons of the same status counts as one);
- raw SQL in string literals (``status = 'error'``, ``status IN (...)``).

A place fails if the statuses it matches include ``error`` but not ``system_error``. Values
are resolved statically: literals, ``ExecutionStatus`` members (any alias), the groups of
``failures.statuses`` (any alias), module constants, ``sorted()``/``list()``/``set()``
of those and ``|``/``-``/``&`` between them. Step statuses (``StepStatus``) are a different
field and are not runs' statuses. A line that must match ``error`` alone says why with a
``# error-only: <reason>`` comment.
"""

from __future__ import annotations

import ast
import enum
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from failures import statuses as statuses_module

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("executions", "pipeline", "scheduler", "reaper", "observability", "frontend")
FILTER_CALLS = frozenset({"filter", "exclude", "get", "Q", "When"})
STATUS_LOOKUP = re.compile(r"^(?:\w+__)?(?:status|from_status|to_status)(?:__(?:exact|iexact|in))?$")
STATUS_NAME = re.compile(r"(?:^|_)status(?:es)?$")
PRAGMA = "# error-only:"
ERROR, SYSTEM_ERROR = statuses_module.ExecutionStatus.ERROR.value, statuses_module.ExecutionStatus.SYSTEM_ERROR.value
UNKNOWN = None


@dataclass(frozen=True)
class Site:
    path: str
    line: int
    kind: str
    statuses: frozenset[str]
    source: str

    @property
    def error_alone(self) -> bool:
        return ERROR in self.statuses and SYSTEM_ERROR not in self.statuses

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind} matches {sorted(self.statuses)}: {self.source.strip()}"


class _Module:
    """Static resolution of the values a module filters on."""

    def __init__(self, tree: ast.Module):
        self.imports: dict[str, object] = {}
        self.constants: dict[str, ast.expr] = {}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self._import(node.module, alias.name, alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "failures.statuses" and alias.asname:
                        self.imports[alias.asname] = statuses_module
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and node.value is not None:
                        self.constants[target.id] = node.value

    def _import(self, module: str, name: str, local: str) -> None:
        if module == "failures" and name == "statuses":
            self.imports[local] = statuses_module
        elif module == "failures.statuses" and hasattr(statuses_module, name):
            self.imports[local] = getattr(statuses_module, name)
        elif module == "executions.models" and name in ("StepStatus",):
            self.imports[local] = ("step-status",)

    def obj(self, node: ast.expr, depth: int = 0) -> object:
        """The Python object an expression stands for, as far as it can be known."""
        if depth > 20:
            return UNKNOWN
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.imports:
                return self.imports[node.id]
            if node.id in self.constants:
                return self.obj(self.constants[node.id], depth + 1)
            return UNKNOWN
        if isinstance(node, ast.Attribute):
            base = self.obj(node.value, depth + 1)
            if base == ("step-status",):
                return ("step-status",)
            if isinstance(base, str) and node.attr == "value":
                return base
            if base is statuses_module or (isinstance(base, type) and issubclass(base, enum.Enum)):
                return getattr(base, node.attr, UNKNOWN)
            return UNKNOWN
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1:
            if node.func.id in ("sorted", "list", "tuple", "set", "frozenset"):
                return self.values(node.args[0], depth + 1)
            return UNKNOWN
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return self.values(node, depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr | ast.Sub | ast.BitAnd):
            left, right = self.values(node.left, depth + 1), self.values(node.right, depth + 1)
            if left is UNKNOWN or right is UNKNOWN:
                return UNKNOWN
            if isinstance(node.op, ast.BitOr):
                return left | right
            return left - right if isinstance(node.op, ast.Sub) else left & right
        return UNKNOWN

    def values(self, node: ast.expr, depth: int = 0) -> frozenset[str] | None:
        """The set of run statuses an expression matches; None if unknown or not a run status."""
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            found: set[str] = set()
            for element in node.elts:
                element_values = self.values(element, depth + 1)
                if element_values is UNKNOWN:
                    return UNKNOWN
                found |= element_values
            return frozenset(found)
        obj = self.obj(node, depth)
        if obj == ("step-status",):
            return UNKNOWN
        if isinstance(obj, str):
            return frozenset({str(obj)})
        if isinstance(obj, set | frozenset | list | tuple) and all(isinstance(item, str) for item in obj):
            return frozenset(str(item) for item in obj)
        return UNKNOWN


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return ""


def _status_lookups(module: _Module, call: ast.Call) -> frozenset[str] | None:
    found: set[str] = set()
    seen = False
    for keyword in call.keywords:
        pairs = []
        if keyword.arg is not None and STATUS_LOOKUP.match(keyword.arg):
            pairs.append(keyword.value)
        elif keyword.arg is None and isinstance(keyword.value, ast.Dict):
            pairs += [
                v
                for k, v in zip(keyword.value.keys, keyword.value.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(k.value, str) and STATUS_LOOKUP.match(k.value)
            ]
        for value in pairs:
            matched = module.values(value)
            if matched is not UNKNOWN:
                found |= matched
                seen = True
    return frozenset(found) if seen else UNKNOWN


def _is_status_expr(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return bool(STATUS_NAME.search(node.attr))
    if isinstance(node, ast.Name):
        return bool(STATUS_NAME.search(node.id))
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return isinstance(node.slice.value, str) and bool(STATUS_NAME.search(node.slice.value))
    return False


def _comparison(module: _Module, node: ast.Compare) -> frozenset[str] | None:
    if len(node.ops) != 1 or not isinstance(node.ops[0], ast.Eq | ast.NotEq | ast.In | ast.NotIn):
        return UNKNOWN
    left, right = node.left, node.comparators[0]
    if _is_status_expr(left):
        return module.values(right)
    if _is_status_expr(right) and isinstance(node.ops[0], ast.Eq | ast.NotEq):
        return module.values(left)
    return UNKNOWN


SQL_EQUALS = re.compile(r"\bstatus\s*(?:=|<>|!=)\s*'(\w+)'", re.IGNORECASE)
SQL_IN = re.compile(r"\bstatus\s+(?:NOT\s+)?IN\s*\(([^)]*)\)", re.IGNORECASE)


def find_sites(source: str, path: str = "<snippet>") -> list[Site]:
    """Every status filter of *source* whose statuses can be resolved."""
    tree = ast.parse(source)
    module = _Module(tree)
    lines = source.splitlines()
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    sites: list[Site] = []
    grouped: set[int] = set()

    def add(node: ast.AST, kind: str, statuses: frozenset[str]) -> None:
        sites.append(Site(path, node.lineno, kind, statuses, lines[node.lineno - 1] if lines else ""))

    def chain_top(node: ast.AST, kinds: tuple[type, ...], op: tuple[type, ...]) -> ast.AST:
        top = node
        while isinstance(parents.get(top), kinds) and isinstance(parents[top].op, op):
            top = parents[top]
        return top

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in FILTER_CALLS and id(node) not in grouped:
            if _call_name(node) == "Q":
                top = chain_top(node, (ast.BinOp,), (ast.BitOr,))
                members = [n for n in ast.walk(top) if isinstance(n, ast.Call) and _call_name(n) == "Q"]
            else:
                members = [node]
            found = [s for s in (_status_lookups(module, m) for m in members) if s is not UNKNOWN]
            grouped.update(id(m) for m in members)
            if found:
                add(node, f"{_call_name(node)}()", frozenset().union(*found))
        elif isinstance(node, ast.Compare) and id(node) not in grouped:
            top = chain_top(node, (ast.BoolOp,), (ast.Or, ast.And))
            members = [n for n in ast.walk(top) if isinstance(n, ast.Compare)] if top is not node else [node]
            found = [s for s in (_comparison(module, m) for m in members) if s is not UNKNOWN]
            grouped.update(id(m) for m in members)
            if found:
                add(node, "comparison", frozenset().union(*found))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for match in SQL_EQUALS.finditer(node.value):
                add(node, "SQL", frozenset({match.group(1).lower()}))
            for match in SQL_IN.finditer(node.value):
                add(node, "SQL", frozenset(re.findall(r"'(\w+)'", match.group(1))))
    return sites


def violations(sites: list[Site], source: str) -> list[Site]:
    lines = source.splitlines()
    return [s for s in sites if s.error_alone and PRAGMA not in lines[s.line - 1]]


def scanned_files() -> list[Path]:
    files = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                files.append(path)
    return files


# --------------------------------------------------------------------------------------
# the walk
# --------------------------------------------------------------------------------------


def test_no_filter_on_an_error_status_matches_error_without_system_error():
    found, bad = [], []
    for path in scanned_files():
        source = path.read_text()
        sites = find_sites(source, str(path.relative_to(ROOT)))
        found += sites
        bad += violations(sites, source)
    assert not bad, "filters matching `error` without `system_error` (use ERROR_STATUSES / FAILED_FOR_DIGEST):\n" + (
        "\n".join(map(str, bad))
    )
    # The walk is not vacuous: it sees the error filters of the metrics and the digest.
    error_sites = {s.path for s in found if SYSTEM_ERROR in s.statuses}
    assert {"observability/collectors.py", "observability/digest.py"} <= error_sites


# --------------------------------------------------------------------------------------
# the detector itself
# --------------------------------------------------------------------------------------

HEADER = """
from django.db.models import Q
from failures.statuses import ERROR_STATUSES, FAILED_FOR_DIGEST, TERMINAL, ExecutionStatus
from failures.statuses import ExecutionStatus as S
from failures import statuses
from executions.models import Execution, Step, StepStatus
"""

FLAGGED = {
    "a literal": 'Execution.objects.filter(status="error")',
    "an enum member": "Execution.objects.filter(status=ExecutionStatus.ERROR)",
    "an aliased enum member": "Execution.objects.exclude(status=S.ERROR)",
    "a list lookup": 'Execution.objects.filter(workflow=w, status__in=["error", "cancelled"])',
    "a module constant": 'FAILED = ("error",)\nExecution.objects.filter(status__in=FAILED)',
    "a sorted constant": "FAILED = {S.ERROR}\nExecution.objects.filter(status__in=sorted(FAILED))",
    "a group minus system_error": "Execution.objects.filter(status__in=ERROR_STATUSES - {S.SYSTEM_ERROR})",
    "a Q object": "Execution.objects.filter(Q(status=S.ERROR) | Q(status=S.CANCELLED))",
    "a transition log lookup": 'Transition.objects.filter(to_status="error")',
    "a related lookup": 'Workflow.objects.filter(executions__status="error")',
    "a comparison": 'if run.status == "error":\n    pass',
    "a membership test": "if run.status in (S.ERROR, S.CANCELLED):\n    pass",
    "a dict row": 'failed = [r for r in rows if r["status"] == S.ERROR]',
    "a kwargs dict": 'Execution.objects.filter(**{"status": "error"})',
    "raw SQL": "cursor.execute(\"SELECT count(*) FROM executions_execution WHERE status = 'error'\")",
    "raw SQL with IN": "sql = \"SELECT 1 FROM executions_execution WHERE status IN ('error', 'cancelled')\"",
    "a group by its module": (
        "Execution.objects.filter(status__in=statuses.ERROR_STATUSES & {statuses.ExecutionStatus.ERROR})"
    ),
}

ALLOWED = {
    "the shared group": "Execution.objects.filter(status__in=ERROR_STATUSES)",
    "the digest's group": "Execution.objects.filter(status__in=sorted(FAILED_FOR_DIGEST))",
    "a group by its module": "Execution.objects.filter(status__in=statuses.ERROR_STATUSES)",
    "both members": "Execution.objects.filter(status__in=[S.ERROR, S.SYSTEM_ERROR])",
    "system_error alone": "Execution.objects.filter(status=S.SYSTEM_ERROR)",
    "an or of Q objects": "Execution.objects.filter(Q(status=S.ERROR) | Q(status=S.SYSTEM_ERROR))",
    "an or of comparisons": "if run.status == S.ERROR or run.status == S.SYSTEM_ERROR:\n    pass",
    "a step status": "Step.objects.filter(status=StepStatus.ERROR)",
    "a write": 'Execution.objects.filter(pk=1).update(status="error")',
    "an unknown value": "Execution.objects.filter(status__in=request_statuses)",
    "an error type": 'Execution.objects.filter(error_type="user")',
    "a justified exception": 'Execution.objects.filter(status="error")  # error-only: the user-errors list',
    "raw SQL with both": "sql = \"WHERE status IN ('error', 'system_error')\"",
    "the terminal group": "Execution.objects.filter(status__in=TERMINAL)",
}


@pytest.mark.parametrize("snippet", FLAGGED.values(), ids=FLAGGED.keys())
def test_the_walk_flags_a_filter_matching_error_alone(snippet):
    source = HEADER + snippet
    assert violations(find_sites(source), source), snippet


@pytest.mark.parametrize("snippet", ALLOWED.values(), ids=ALLOWED.keys())
def test_the_walk_accepts_filters_that_match_both_error_statuses_or_no_error(snippet):
    source = HEADER + snippet
    assert not violations(find_sites(source), source), snippet
