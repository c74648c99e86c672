"""SNS adapter: publish a snapshot to this region's topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.events import MembershipSnapshot

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class Topic:
    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._arn = topic_arn

    def publish(self, snapshot: MembershipSnapshot) -> str:
        """Publish and return the message id; any failure raises so the invocation is retried."""
        response = self._client.publish(
            TopicArn=self._arn,
            Message=snapshot.to_json(),
            MessageAttributes={
                "cluster": {"DataType": "String", "StringValue": snapshot.cluster},
                "type": {"DataType": "String", "StringValue": snapshot.type},
            },
        )
        return response["MessageId"]
