"""Prometheus metrics of the queue side: dead-lettering and each worker's consumer
liveness (served by the worker's exporter; deploy/prometheus/alerts.yml reads them).
Declared once, prefixed `conveyor_`, with bounded label values (the platform's queue
names, failure reasons and recovery reasons are closed sets)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

# reason: undecodable | rejected | unknown_task (Celery refused it) | schema | version | signature
DEAD_LETTERED = Counter("conveyor_dead_lettered", "Messages copied to the dead-letter queue", ["reason"])
LAST_RECEIVE = Gauge(
    "conveyor_consumer_last_receive_timestamp_seconds",
    "When the worker's consumer last completed an SQS receive, by queue (Unix time)",
    ["queue"],
    multiprocess_mode="livemax",
)
SATURATED = Gauge(
    "conveyor_consumer_saturated",
    "1 while the worker holds all the messages it may (its pool is full): it does not receive, by design",
    ["queue"],
    multiprocess_mode="livemax",
)
RECEIVE_FAILURES = Counter(
    "conveyor_consumer_receive_failures", "SQS receives that got no answer, by queue and reason", ["queue", "reason"]
)
RECOVERIES = Counter(
    "conveyor_consumer_recoveries", "Times the consumer's watchdog rebuilt its SQS connection, by reason", ["reason"]
)
QUEUES_RECREATED = Counter(
    "conveyor_sqs_queues_recreated", "Platform queues found missing and created again", ["queue"]
)
ACK_FAILURES = Counter("conveyor_sqs_ack_failures", "Acknowledgements (DeleteMessage) that failed")
EXPIRED_DISCARDED = Counter(
    "conveyor_expired_tasks_discarded",
    "Periodic messages discarded unrun because their next one was already due (a backlog after an outage)",
    ["task"],
)
