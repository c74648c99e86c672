"""SQS adapter: this region's lifecycle buffer, where the admission barrier sends its own checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class LifecycleQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, event: Mapping[str, Any], delay_seconds: int = 0) -> str:
        """Put one event on the queue, visible after `delay_seconds` (SQS takes 0-900); raises on failure."""
        response = self._client.send_message(
            QueueUrl=self._url, MessageBody=json.dumps(event), DelaySeconds=delay_seconds
        )
        return response["MessageId"]
