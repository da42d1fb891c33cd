"""What a run may produce is bounded (CONVEYOR_MAX_STEP_OUTPUT_BYTES, CONVEYOR_MAX_RUN_OUTPUT_BYTES):
a template that doubles its input at every step stops, as a user error naming the step and
the limit, at the step whose output crosses it — counted while the template renders, never
by serialising the value — and a run's outputs are stored once (in the step rows).

Runs go through the real consumer on PostgreSQL with the inline runtime (the isolated
runtime runs the same engine in its child)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from executions.models import Execution, Step
from messaging import messages
from pipeline.consume import Outcome, consume
from tests.factories import make_execution, make_workflow
from tests.ui import api_client, member, staff_client
from workflows.limits import Meter, OverBudget, pipe_message_limit

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[1]
STEP_LIMIT = 1024 * 1024  # the defaults
RUN_LIMIT = 4 * 1024 * 1024


def doubling(steps: int, base: int) -> dict:
    """The definition the attack used: each step's output holds the previous one twice."""
    definition = [{"id": "s0", "action": "transform", "config": {"output": "x" * base}}]
    for k in range(1, steps):
        previous = f"{{{{ steps.s{k - 1}.output }}}}"
        definition.append({"id": f"s{k}", "action": "transform", "config": {"output": {"a": previous, "b": previous}}})
    return {"steps": definition}


def doubled_sizes(steps: int, base: int) -> list[int]:
    """Each step's output size as compact JSON, without building it: {"a":X,"b":X}."""
    sizes = [base + 2]
    for _ in range(1, steps):
        sizes.append(2 * sizes[-1] + len('{"a":,"b":}'))
    return sizes


def run_inline(definition: dict, *, user=None, input: dict | None = None) -> Execution:
    org = user.membership.organization if user else None
    execution = make_execution(make_workflow(org, definition=definition), input=input or {}, runtime="inline")
    assert consume(messages.build(execution.id, execution.dispatch_key), hostname="test") == Outcome.CLAIMED
    execution.refresh_from_db()
    return execution


def steps_of(execution: Execution) -> list[tuple[str, str]]:
    return list(Step.objects.filter(execution=execution).values_list("step_id", "status"))


def test_a_template_doubling_every_step_stops_as_a_user_error_at_the_step_that_crosses_the_limit():
    user = member()
    sizes = doubled_sizes(14, base=2500)
    crossing = next(k for k, size in enumerate(sizes) if size > STEP_LIMIT)
    assert 0 < crossing < 13 and sum(sizes[:crossing]) <= RUN_LIMIT  # the step limit is what stops it

    run = run_inline(doubling(14, base=2500), user=user)

    assert (run.status, run.error_type, run.error_code) == ("error", "user", "")
    assert steps_of(run) == [(f"s{k}", "success") for k in range(crossing)] + [(f"s{crossing}", "error")]
    failed = Step.objects.get(execution=run, step_id=f"s{crossing}")
    assert failed.output is None
    for message in (run.error_message, failed.error_message):
        assert f"step 's{crossing}'" in message
        assert "CONVEYOR_MAX_STEP_OUTPUT_BYTES" in message and str(STEP_LIMIT) in message

    # The run detail the attack read at 40 MB: what ran is bounded by the limits.
    response = api_client(user).get(f"/api/runs/{run.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "error" and f"step 's{crossing}'" in body["error"]["message"]
    assert [step["status"] for step in body["steps"]] == ["success"] * crossing + ["error"]
    assert len(response.content) < 2 * RUN_LIMIT + STEP_LIMIT


def test_the_size_of_shared_references_is_counted_once_per_object():
    # 2^100 copies of a leaf: serialising it would never end, counting it is immediate.
    value: object = "leaf"
    for _ in range(100):
        value = [value, value]
    size = Meter().measure(value, budget=10**40)
    assert size == 2**100 * len('"leaf"') + (2**100 - 1) * len("[,]")
    with pytest.raises(OverBudget):
        Meter().measure(value, budget=STEP_LIMIT)


@override_settings(MAX_STEP_OUTPUT_BYTES=4096, PYTHON_CALLABLE_ALLOWLIST=["tests.callables.repeat"])
def test_an_action_output_over_the_step_limit_fails_that_step():
    definition = {
        "steps": [
            {"id": "small", "action": "transform", "config": {"output": "x" * 1000}},
            {
                "id": "big",
                "action": "python",
                "config": {"callable": "tests.callables.repeat", "kwargs": {"text": "ab", "times": 2100}},
            },
            {"id": "after", "action": "transform", "config": {"output": 1}},
        ]
    }

    run = run_inline(definition)

    assert (run.status, run.error_type) == ("error", "user")
    assert steps_of(run) == [("small", "success"), ("big", "error")]
    assert "step 'big': its output would be more than 4096 bytes" in run.error_message
    assert "CONVEYOR_MAX_STEP_OUTPUT_BYTES" in run.error_message


@override_settings(MAX_STEP_OUTPUT_BYTES=4096)
def test_a_config_rendered_over_the_step_limit_fails_before_its_action_runs():
    definition = {
        "steps": [
            {"id": "fetch", "action": "transform", "config": {"output": "y" * 3000}},
            {
                "id": "join",
                "action": "transform",
                "config": {"output": "{{ steps.fetch.output }}-{{ steps.fetch.output }}"},
            },
        ]
    }

    run = run_inline(definition)

    assert steps_of(run) == [("fetch", "success"), ("join", "error")]
    assert "step 'join': its config as rendered would be more than 4096 bytes" in run.error_message


@override_settings(MAX_STEP_OUTPUT_BYTES=4096, MAX_RUN_OUTPUT_BYTES=10_000)
def test_outputs_over_the_run_limit_fail_the_step_that_crosses_it():
    definition = {"steps": [{"id": f"t{i}", "action": "transform", "config": {"output": "z" * 3000}} for i in range(5)]}

    run = run_inline(definition)

    assert (run.status, run.error_type) == ("error", "user")
    assert steps_of(run) == [("t0", "success"), ("t1", "success"), ("t2", "success"), ("t3", "error")]
    assert "step 't3'" in run.error_message and "CONVEYOR_MAX_RUN_OUTPUT_BYTES" in run.error_message
    assert "12008 bytes, more than the limit of 10000" in run.error_message


@override_settings(MAX_STEP_OUTPUT_BYTES=2 * 1024 * 1024)
def test_a_large_output_is_stored_once():
    user = member()
    blob = "b" * 1_500_000
    definition = {"steps": [{"id": "shape", "action": "transform", "config": {"output": {"blob": "{{ input.blob }}"}}}]}

    run = run_inline(definition, user=user, input={"blob": blob})

    assert run.status == "success", run.error_message
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(octet_length(output::text), 0) FROM executions_execution WHERE id = %s", [run.pk]
        )
        (run_row,) = cursor.fetchone()
        cursor.execute("SELECT sum(octet_length(output::text)) FROM executions_step WHERE execution_id = %s", [run.pk])
        (step_rows,) = cursor.fetchone()
    assert run_row < 100  # only which step holds the result
    assert len(blob) <= step_rows < len(blob) + 100  # once, not three times

    # The API shows the document it always showed.
    body = api_client(user).get(f"/api/runs/{run.pk}/").json()
    assert body["output"] == {"steps": {"shape": {"blob": blob}}, "result": {"blob": blob}}
    assert body["steps"][0]["output"] == {"blob": blob}


def test_the_runs_page_and_the_admin_show_the_output_put_together_from_the_steps(client):
    user = member()
    definition = {"steps": [{"id": "greet", "action": "transform", "config": {"output": {"hello": "unmistakable-7"}}}]}
    run = run_inline(definition, user=user)
    assert run.output == {"result_step": "greet"}

    client.force_login(user)
    page = client.get(reverse("frontend:run-detail", args=[run.pk])).content.decode()
    operator = staff_client()[0]
    admin = operator.get(f"/admin/executions/execution/{run.pk}/change/").content.decode()

    for html in (page, admin):
        assert "result" in html and "unmistakable-7" in html and "result_step" not in html


def test_a_run_stored_before_outputs_were_stored_once_still_shows_its_output():
    user = member()
    legacy = {"steps": {"t": {"n": 1}}, "result": {"n": 1}}
    run = make_execution(make_workflow(user.membership.organization), status="success", output=legacy)

    assert api_client(user).get(f"/api/runs/{run.pk}/").json()["output"] == legacy


def test_the_pipe_bound_covers_a_whole_run_as_json_dumps_writes_it():
    outputs = {
        "steps": {f"s{k}": "\u00e9" * (RUN_LIMIT // 10 // 2) for k in range(10)},
        "result": "\u00e9" * (STEP_LIMIT // 2),
    }
    # Every output at its limit in 2-byte characters, which json.dumps writes as 6 bytes each.
    line = json.dumps({"type": "result", "output": outputs}, default=str) + "\n"
    assert len(line.encode()) <= pipe_message_limit()


def _check(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "DJANGO_", "PYTEST"))}
    clean.update(CONVEYOR_EMBEDDED="1", DATABASE_URL="sqlite:////tmp/conveyor-limits.sqlite3", **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CONVEYOR_MAX_STEP_OUTPUT_BYTES": "1MB"}, "CONVEYOR_MAX_STEP_OUTPUT_BYTES='1MB' is not an integer"),
        ({"CONVEYOR_MAX_RUN_OUTPUT_BYTES": "100"}, "CONVEYOR_MAX_RUN_OUTPUT_BYTES=100 is below its minimum 1024"),
        (
            {"CONVEYOR_MAX_STEP_OUTPUT_BYTES": "2097152", "CONVEYOR_MAX_RUN_OUTPUT_BYTES": "1048576"},
            "conveyor.E005",
        ),
    ],
)
def test_bad_output_limits_stop_the_process_at_start(env, message):
    result = _check(**env)
    assert result.returncode != 0 and message in result.stderr
