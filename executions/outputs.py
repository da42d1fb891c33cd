"""A run's output is stored once: in its step rows (docs/decisions/0010).

The engine returns `{"steps": {step id: output}, "result": the last step's output}`. Kept
as it is, every output was written three times over (its step row, `steps.<id>` and
`result` of the run row): a 1.5 MB transform output took 4.5 MB. Each step row already
holds its output (written as the step finishes, so a run that fails half-way still shows
what its first steps produced); the run row keeps only which step's output is the
result, `{"result_step": "<step id>"}`, and `run_output` puts the document together again
for the API, the pages and the admin, in the shape they always had.

Rows written before this change hold the whole document; `run_output` returns those as
they are, so nothing needs migrating.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from executions.models import Execution, Step, StepStatus

RESULT_STEP = "result_step"


def stored_form(output: Any) -> Any:
    """What the run row keeps of the engine's output: the id of the step whose output is
    the result (the last step that ran: the engine's `steps` are in the order they ran)."""
    if isinstance(output, dict) and isinstance(output.get("steps"), dict) and "result" in output:
        ran = list(output["steps"])
        return {RESULT_STEP: ran[-1] if ran else None}
    return output


def run_output(execution: Execution, steps: Iterable[Step] | None = None) -> Any:
    """The run's output document, `{"steps": {...}, "result": ...}` (None before it ends).
    Pass `steps` when they are already loaded, to save the query."""
    stored = execution.output
    if not (isinstance(stored, dict) and set(stored) == {RESULT_STEP}):
        return stored  # None, or a row written before outputs were stored once
    rows = list(execution.steps.all()) if steps is None else list(steps)
    outputs = {
        step.step_id: step.output
        for step in sorted(rows, key=lambda s: (s.position, s.started_at))
        if step.status == StepStatus.SUCCESS
    }
    return {"steps": outputs, "result": outputs.get(stored[RESULT_STEP])}
