"""The end-to-end harness works: real moto over HTTP, a cuttable proxy, real worker processes."""

from __future__ import annotations

import os
import time

import pytest
from botocore.exceptions import BotoCoreError
from kombu.exceptions import OperationalError

from tests.harness.noop_tasks import COUNTER_FILE_ENV, counted
from tests.harness.processes import is_alive, settings_for_worker_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONNECTION_ERRORS = (OperationalError, BotoCoreError, ConnectionError, OSError)


def test_the_producer_publishes_to_this_tests_prefixed_queue_through_the_proxy(producer_app, sqs_queues, sqs_proxy):
    producer_app.send_task("bench.noop")

    assert sqs_queues.count("runs") == 1
    assert sqs_proxy.connections_accepted >= 1


def test_the_producer_settings_apply_inside_the_context_only():
    from django.conf import settings

    from config.celery import app

    before = app.conf.broker_transport_options["queue_name_prefix"]
    env = {"CONVEYOR_QUEUE_PREFIX": "tcontext-", "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:9"}
    with settings_for_worker_env(env):
        assert app.conf.broker_transport_options["queue_name_prefix"] == "tcontext-"
        assert settings.QUEUE_PREFIX == "tcontext-"
        assert settings.SQS_ENDPOINT_URL == os.environ["AWS_ENDPOINT_URL_SQS"] == "http://127.0.0.1:9"
    assert app.conf.broker_transport_options["queue_name_prefix"] == before == settings.QUEUE_PREFIX
    assert os.environ.get("AWS_ENDPOINT_URL_SQS") != "http://127.0.0.1:9"


def test_a_real_worker_drains_noop_tasks_published_through_the_proxy(
    celery_processes, producer_app, sqs_queues, tmp_path
):
    counter = tmp_path / "counter"
    database_file = tmp_path / "database"
    worker = celery_processes.start_worker({COUNTER_FILE_ENV: str(counter)}, concurrency=2)
    assert len(worker.pool_pids(expected=2)) == 2

    total = 30
    started = time.monotonic()
    for _ in range(total):
        producer_app.send_task("bench.noop")
    producer_app.send_task("bench.database_name", args=[str(database_file)])

    assert wait_until(lambda: counted(counter) == total and database_file.exists(), timeout=30)
    elapsed = time.monotonic() - started
    assert sqs_queues.wait_for_count("runs", 0, timeout=10) == 0
    from django.conf import settings

    assert database_file.read_text() == settings.DATABASES["default"]["NAME"]
    print(f"drained {total} noop tasks in {elapsed:.2f}s ({total / elapsed:.0f} tasks/s)")


def test_publishing_fails_fast_while_the_proxy_is_cut_and_works_again_after_restore(
    producer_app, sqs_queues, sqs_proxy
):
    producer_app.send_task("bench.noop")  # a warm pooled connection, reset by the cut

    sqs_proxy.cut()
    started = time.monotonic()
    with pytest.raises(CONNECTION_ERRORS) as failure:
        producer_app.send_task("bench.noop")
    latency = time.monotonic() - started
    print(f"publish with the proxy cut failed after {latency:.2f}s: {failure.value!r}")
    assert latency < 10

    sqs_proxy.restore()
    producer_app.send_task("bench.noop")
    assert sqs_queues.count("runs") == 2


def test_a_worker_survives_a_cut_of_sqs_and_consumes_again_once_it_is_restored(
    celery_processes, producer_app, sqs_proxy, tmp_path
):
    counter = tmp_path / "counter"
    worker = celery_processes.start_worker({COUNTER_FILE_ENV: str(counter)}, concurrency=1)

    sqs_proxy.cut()  # resets the worker's in-flight long poll
    time.sleep(2)
    sqs_proxy.restore()
    producer_app.send_task("bench.noop")

    wait_until(lambda: counted(counter) == 1 or not worker.is_running(), timeout=20)
    assert worker.is_running(), f"worker exited with {worker.returncode}:\n{worker.log_text()[-2000:]}"
    assert counted(counter) == 1


def test_sigkill_of_a_worker_leaves_no_orphan_processes_after_teardown(celery_processes, producer_app):
    worker = celery_processes.start_worker(concurrency=2)
    pool = worker.pool_pids(expected=2)
    assert len(pool) == 2
    producer_app.send_task("bench.sleep", args=[60])  # a pool process busy with a task
    assert worker.wait_for_log("bench.sleep", timeout=10)

    pool_stats = [stat for stat in worker.tracked() if stat.pid in pool]
    worker.kill()
    assert worker.wait(timeout=10) == -9
    # billiard gives pool processes a parent-death signal: they go with the main process.
    assert wait_until(lambda: not any(is_alive(stat) for stat in pool_stats), timeout=10)

    survivors = celery_processes.stop_all()
    assert survivors == []
    assert not any(is_alive(stat) for stat in worker.tracked())
