"""SNS adapter: publish an event (a snapshot, a resync request) to this region's topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.events import Event

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class Topic:
    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._arn = topic_arn

    def publish(self, event: Event) -> str:
        """Publish and return the message id; any failure raises so the invocation is retried.

        The `type` attribute lets a subscription filter events without reading them (it is not signed:
        consumers read the type from the message itself).
        """
        response = self._client.publish(
            TopicArn=self._arn,
            Message=event.to_json(),
            MessageAttributes={
                "cluster": {"DataType": "String", "StringValue": event.cluster},
                "type": {"DataType": "String", "StringValue": event.type},
            },
        )
        return response["MessageId"]
