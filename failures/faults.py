"""Named fault-injection points for the end-to-end fault tests and the soak command.

Off unless CONVEYOR_FAULT_INJECTION lists a point; a system check warns when it is set
outside DEBUG. Only failures that cannot be provoked from outside a process (an
unexpected exception inside the consumer or the dispatcher, a worker's event loop that
stops turning) have a point here; killed
processes, a cut queue and a terminated database connection are injected for real.
"""

from __future__ import annotations

import time

from django.conf import settings

POINTS = frozenset({"consumer", "dispatch", "consumer-loop-freeze"})


class InjectedFault(RuntimeError):
    pass


def maybe_inject(point: str) -> None:
    if point in settings.FAULT_INJECTION:
        raise InjectedFault(f"fault injected at {point}")


def maybe_freeze(point: str, seconds: float = 3600.0) -> None:
    """Block the calling thread, as a loop stuck in a call that never returns would."""
    if point in settings.FAULT_INJECTION:
        time.sleep(seconds)
