"""transform: {"output": <any JSON with templates>} → the rendered value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.actions.registry import Action, StepContext


class TransformAction(Action):
    name = "transform"
    # Computes or waits only: repeating it is always safe.
    idempotent_always = True
    allowed_fields = required_fields = ("output",)

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        # The engine has already rendered the templates: the rendered value is the output.
        return config["output"]
