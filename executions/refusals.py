"""What every interface answers when an action on a run or a workflow fails: refused
(the run or the workflow is not in a state that allows it) or not queued (the new run
exists but its message could not be sent: it is already `system_error` with its
producer's code). One mapping for the admin, the runs pages and the API.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from executions.enqueue import EnqueueFailed


class ActionRefused(ValueError):
    """The action does not apply to the run or workflow as it is; the message says why
    and may be shown to whoever asked."""


@dataclass(frozen=True)
class Answer:
    status: int  # what the API answers: 409 refused, 503 not queued
    message: str  # what the user may read: the reason, or the run's customer message
    run_id: uuid.UUID | None = None  # the run that could not be queued

    @property
    def not_queued(self) -> bool:
        return self.run_id is not None


# What the interfaces catch around an action.
FAILURES = (ActionRefused, EnqueueFailed)


def answer_for(failure: ActionRefused | EnqueueFailed) -> Answer:
    if isinstance(failure, EnqueueFailed):
        # The customer message only: the internal cause (hosts, the SQS error) stays in the run.
        return Answer(503, failure.customer_message, failure.execution.pk)
    return Answer(409, str(failure))
