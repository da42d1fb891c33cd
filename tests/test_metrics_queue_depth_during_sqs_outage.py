"""conveyor_queue_depth{queue} is read from SQS with a short timeout and cached, so /metrics
answers during an SQS outage: with the last known depth, its age, and
conveyor_queue_depth_up 0."""

import socket
import time

import pytest

from observability.scrape import value

pytestmark = pytest.mark.django_db


@pytest.fixture
def queues_behind_proxy(settings, sqs_proxy, sqs_queues):
    settings.SQS_ENDPOINT_URL = sqs_proxy.url
    settings.QUEUE_PREFIX = sqs_queues.prefix
    settings.METRICS_QUEUES = ["runs", "maintenance", "dead-letter"]
    settings.METRICS_QUEUE_TIMEOUT_S = 0.5
    settings.METRICS_QUEUE_CACHE_S = 0  # every scrape tries SQS again
    return sqs_queues


def timed_scrape(client) -> tuple[str, float]:
    started = time.monotonic()
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode(), time.monotonic() - started


def test_metrics_answer_with_the_last_known_depth_while_the_sqs_endpoint_is_cut(client, sqs_proxy, queues_behind_proxy):
    queues_behind_proxy.send_raw("runs", "one")
    queues_behind_proxy.send_raw("runs", "two")
    queues_behind_proxy.send_raw("dead-letter", "poison")
    text, _ = timed_scrape(client)
    assert value(text, "conveyor_queue_depth", queue="runs") == 2
    assert value(text, "conveyor_queue_depth", queue="maintenance") == 0
    assert value(text, "conveyor_queue_depth", queue="dead-letter") == 1
    assert value(text, "conveyor_queue_depth_up") == 3

    sqs_proxy.cut()
    text, took = timed_scrape(client)

    assert took < 2.0
    assert value(text, "conveyor_queue_depth", queue="runs") == 2
    assert value(text, "conveyor_queue_depth", queue="dead-letter") == 1
    assert value(text, "conveyor_queue_depth_up", queue="runs") == 0
    assert value(text, "conveyor_queue_depth_up") == 0
    assert value(text, "conveyor_queue_depth_age_seconds", queue="runs") >= 0
    assert value(text, "conveyor_executions", status="system_error", error_type="system") == 0  # the rest answers

    sqs_proxy.restore()
    text, _ = timed_scrape(client)
    assert value(text, "conveyor_queue_depth_up") == 3


def test_an_endpoint_that_never_answers_costs_one_short_timeout_then_the_cache_answers(client, settings, sqs_queues):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections in the kernel, never reads or answers
    try:
        settings.SQS_ENDPOINT_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.QUEUE_PREFIX = sqs_queues.prefix
        settings.METRICS_QUEUES = ["runs", "maintenance", "dead-letter"]
        settings.METRICS_QUEUE_TIMEOUT_S = 0.5
        settings.METRICS_QUEUE_CACHE_S = 60

        text, first = timed_scrape(client)
        assert first < 1.5  # one timeout, not one per queue nor per retry
        assert value(text, "conveyor_queue_depth") is None  # never read: no made-up depth
        assert value(text, "conveyor_queue_depth_up") == 0

        text, second = timed_scrape(client)
        assert second < 0.4  # cached: SQS is not asked again within the cache period
        assert value(text, "conveyor_queue_depth_up") == 0
    finally:
        silent.close()
