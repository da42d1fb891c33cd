"""boto3 helpers that talk to moto directly (never through the proxy under test).

moto enforces the 60 s PurgeQueue limit, so every test gets fresh queues under a
unique prefix instead of purging shared ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import boto3
from botocore.config import Config

QUEUE_NAMES = ("runs", "maintenance", "dead-letter")


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}-"


def sqs_client(endpoint_url: str):
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}),
    )


class SqsQueues:
    """The queues of one test: ``<prefix>runs``, ``<prefix>maintenance``, ``<prefix>dead-letter``."""

    def __init__(self, endpoint_url: str, prefix: str, visibility_timeout: int = 30):
        self.endpoint_url = endpoint_url
        self.prefix = prefix
        self.visibility_timeout = visibility_timeout
        self.client = sqs_client(endpoint_url)
        self._urls: dict[str, str] = {}

    # -- queues --------------------------------------------------------------------
    def create(self, names: Iterable[str] = QUEUE_NAMES) -> SqsQueues:
        for name in names:
            resp = self.client.create_queue(
                QueueName=self.prefix + name,
                Attributes={"VisibilityTimeout": str(self.visibility_timeout)},
            )
            self._urls[name] = resp["QueueUrl"]
        return self

    def delete_all(self) -> None:
        for name in list(self._urls):
            try:
                self.client.delete_queue(QueueUrl=self.url(name))
            except Exception:  # best effort at teardown
                pass
            self._urls.pop(name, None)

    def url(self, name: str) -> str:
        """The URL of queue *name* (prefix-less, e.g. "runs")."""
        if name not in self._urls:
            self._urls[name] = self.client.get_queue_url(QueueName=self.prefix + name)["QueueUrl"]
        return self._urls[name]

    def attributes(self, name: str) -> dict[str, str]:
        return self.client.get_queue_attributes(QueueUrl=self.url(name), AttributeNames=["All"])["Attributes"]

    # -- counting ------------------------------------------------------------------
    def count(self, name: str) -> int:
        """Messages in the queue: visible + in flight (not visible) + delayed."""
        attrs = self.attributes(name)
        return sum(
            int(attrs.get(key, 0))
            for key in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )

    def visible(self, name: str) -> int:
        return int(self.attributes(name).get("ApproximateNumberOfMessages", 0))

    def wait_for_count(self, name: str, expected: int, timeout: float = 30.0, interval: float = 0.1) -> int:
        """Poll until ``count(name) == expected``; returns the last count (check it)."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.count(name)
            if current == expected or time.monotonic() > deadline:
                return current
            time.sleep(interval)

    # -- raw messages --------------------------------------------------------------
    def send_raw(self, name: str, body: str, delay_seconds: int = 0, **kwargs) -> str:
        """Send *body* as is (poison-message tests); returns the MessageId."""
        resp = self.client.send_message(QueueUrl=self.url(name), MessageBody=body, DelaySeconds=delay_seconds, **kwargs)
        return resp["MessageId"]

    def receive(
        self, name: str, max_messages: int = 10, wait_seconds: int = 1, visibility_timeout: int | None = None
    ) -> list[dict]:
        """Receive raw messages (with all system attributes, e.g. ApproximateReceiveCount)."""
        kwargs = {
            "QueueUrl": self.url(name),
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = visibility_timeout
        return self.client.receive_message(**kwargs).get("Messages", [])

    def delete(self, name: str, message: dict) -> None:
        self.client.delete_message(QueueUrl=self.url(name), ReceiptHandle=message["ReceiptHandle"])

    def drain(self, name: str, timeout: float = 5.0) -> list[dict]:
        """Receive and delete everything currently receivable; returns the messages."""
        taken: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = self.receive(name, wait_seconds=0)
            if not batch:
                break
            for message in batch:
                self.delete(name, message)
            taken.extend(batch)
        return taken
