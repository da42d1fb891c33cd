"""Example callables for the `python` action (the default allow-list names the first two;
the rest exist so tests can make a step fail in each of the ways a real callable can)."""

from __future__ import annotations

import time
from typing import Any

from cryptography.fernet import Fernet
from django.db import OperationalError, connection

from workflows.actions.python_callable import idempotent, registered


@idempotent
def add_numbers(a: float, b: float) -> dict[str, float]:
    return {"sum": a + b}


@idempotent
def echo(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def fail(message: str = "it broke") -> None:
    """A bug in user-level logic: the step's own error."""
    raise ValueError(message)


def read_with_wrong_key(token: str = "not-a-fernet-token") -> str:
    """Decrypt with a key that never encrypted the token: a real secret-store failure."""

    return Fernet(Fernet.generate_key()).decrypt(token.encode()).decode()


@registered(database=True)
def query_missing_table() -> list[Any]:
    """A real database error from the platform's own database."""

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM conveyor_no_such_table")
        return cursor.fetchall()


def unserialisable() -> set[int]:
    return {1, 2, 3}


def database_unavailable(message: str = "server closed the connection unexpectedly") -> None:
    """The platform's database failing under a step (the message is the caller's, so a
    test can check what reaches the run's error)."""

    raise OperationalError(message)


def sleep_for(seconds: float) -> dict[str, float]:
    """Takes its time without looking at the run's deadline (unlike the delay action)."""

    time.sleep(seconds)
    return {"slept_s": seconds}
