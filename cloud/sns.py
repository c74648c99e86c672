"""SNS adapter: publish an event (a snapshot, a resync request, an acknowledgement) to this region's topic."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from schemas.events import Acknowledgement, Event
from schemas.routing import SOURCE_REGIONS_ATTRIBUTE, TYPE_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class Topic:
    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._arn = topic_arn

    def publish(self, event: Event) -> str:
        """Publish and return the message id; any failure raises so the invocation is retried."""
        response = self._client.publish(
            TopicArn=self._arn, Message=event.to_json(), MessageAttributes=message_attributes(event)
        )
        return response["MessageId"]


def message_attributes(event: Event) -> dict[str, Any]:
    """What the subscriptions' filter policies read (schemas.routing): the event's type and, for an
    acknowledgement, its sources' regions. Not signed: consumers read both from the message itself."""
    attributes: dict[str, Any] = {
        "cluster": {"DataType": "String", "StringValue": event.cluster},
        TYPE_ATTRIBUTE: {"DataType": "String", "StringValue": event.type},
    }
    if isinstance(event, Acknowledgement):
        attributes[SOURCE_REGIONS_ATTRIBUTE] = {
            "DataType": "String.Array",
            "StringValue": json.dumps(list(event.source_regions)),
        }
    return attributes
