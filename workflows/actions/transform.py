"""transform: {"output": <any JSON with templates>} → the rendered value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.actions.registry import Action, StepContext


class TransformAction(Action):
    name = "transform"
    allowed_fields = ("output",)

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, str]:
        errors = self.unknown_fields(config)
        if "output" not in config:
            errors["output"] = "is required"
        return errors

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        # The engine has already rendered the templates: the rendered value is the output.
        return config["output"]
