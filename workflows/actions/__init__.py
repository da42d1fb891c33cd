"""Built-in workflow actions; `registry` maps action names to them."""

from workflows.actions.registry import END, Action, StepContext, action_names, get_action, get_action_class

__all__ = ["END", "Action", "StepContext", "action_names", "get_action", "get_action_class"]
