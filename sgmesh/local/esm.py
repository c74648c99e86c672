"""Plays Lambda's SQS event source mapping with ReportBatchItemFailures.

Batches of up to `batch_size`, at most one poll per batching window; records the function reports
as failed (or all of them, if it raises) stay on the queue and become visible again after the
visibility timeout, and the queue's own redrive policy moves them to the DLQ past maxReceiveCount.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from boto3.session import Session

from sgmesh.local.clock import SimClock
from sgmesh.local.stack import RegionStack, StackSpec


def sqs_event(messages: list[dict[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda builds from a batch of received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


class EventSourceMapping:
    def __init__(
        self,
        session: Session,
        stack: RegionStack,
        spec: StackSpec,
        clock: SimClock,
        invoke: Callable[[dict[str, Any]], Any],
    ) -> None:
        self._stack = stack
        self._spec = spec
        self._clock = clock
        self._invoke = invoke
        self._sqs = session.client("sqs", region_name=stack.region)
        self._invisible: list[tuple[float, str]] = []
        self.next_poll = clock.now
        self.paused = False
        self.failed_records = 0

    @property
    def next_release(self) -> float | None:
        return min((due for due, _receipt in self._invisible), default=None)

    def poll(self) -> int:
        """Hand every visible message to the function, a batch at a time; return how many."""
        if self.paused or self._clock.now < self.next_poll:
            return 0
        self.next_poll = self._clock.now + self._spec.batching_window_seconds
        handled = 0
        while messages := self._receive():
            self._run_batch(messages)
            handled += len(messages)
        return handled

    def release_due(self) -> int:
        """Failed messages whose visibility timeout has passed become receivable again."""
        due = [(moment, receipt) for moment, receipt in self._invisible if moment <= self._clock.now]
        for entry in due:
            self._invisible.remove(entry)
            self._sqs.change_message_visibility(
                QueueUrl=self._stack.queue_url, ReceiptHandle=entry[1], VisibilityTimeout=0
            )
        return len(due)

    def queued(self) -> tuple[int, int]:
        """Messages on the queue: (visible, in flight)."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._stack.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def depth(self) -> int:
        """Messages on the queue, visible or in flight."""
        return sum(self.queued())

    def _receive(self) -> list[dict[str, Any]]:
        response: Any = self._sqs.receive_message(
            QueueUrl=self._stack.queue_url,
            MaxNumberOfMessages=self._spec.batch_size,
            VisibilityTimeout=self._spec.visibility_timeout_seconds,
            AttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _run_batch(self, messages: list[dict[str, Any]]) -> None:
        try:
            response = self._invoke(
                sqs_event(messages, queue_arn=self._stack.queue_arn, region=self._stack.region)
            )
            failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        except Exception:  # a function error fails the whole batch
            failed = {message["MessageId"] for message in messages}
        self.failed_records += len(failed)
        done = [message for message in messages if message["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._stack.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        visible_again = self._clock.now + self._spec.visibility_timeout_seconds
        self._invisible.extend(
            (visible_again, message["ReceiptHandle"])
            for message in messages
            if message["MessageId"] in failed
        )
