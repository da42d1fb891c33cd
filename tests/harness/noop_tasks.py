"""Bare Celery tasks for the harness smoke test and the pipeline benchmark baseline.

A worker loads them with ``celery -A config worker -I tests.harness.noop_tasks``.

``bench.noop`` does nothing, except, when ``CONVEYOR_BENCH_COUNTER_FILE`` is set in the
worker's environment, append one byte to that file: the file's size is then the number
of tasks executed, whatever the pool (each ``O_APPEND`` write of one byte is atomic, so
concurrent pool processes never lose a count).
"""

from __future__ import annotations

import os
import time

from config.celery import app

COUNTER_FILE_ENV = "CONVEYOR_BENCH_COUNTER_FILE"


def _count_one() -> None:
    path = os.environ.get(COUNTER_FILE_ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


@app.task(name="bench.noop")
def noop() -> None:
    _count_one()


@app.task(name="bench.sleep")
def sleep(seconds: float) -> None:
    """Hold a pool process for *seconds* (a task in flight to kill a worker under)."""
    time.sleep(seconds)
    _count_one()


@app.task(name="bench.database_name")
def database_name(path: str) -> None:
    """Write the name of the database the worker is connected to into *path*."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()" if connection.vendor == "postgresql" else "SELECT 'sqlite'")
        name = cursor.fetchone()[0]
    with open(path, "w") as fh:
        fh.write(name)


def counted(path: str | os.PathLike) -> int:
    """How many counted tasks ran, read from the counter file."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0
