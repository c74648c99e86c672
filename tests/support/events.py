"""Real-shaped Lambda inputs: golden EventBridge events, SQS events from received messages, a context."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).parent.parent / "events"


@cache
def _golden(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return loaded


def golden(name: str) -> dict[str, Any]:
    return copy.deepcopy(_golden(name))


def lifecycle_event(
    *, region: str, group: str, instance_id: str, launching: bool, hook: str, token: str | None = None
) -> dict[str, Any]:
    """An EventBridge lifecycle action exactly as AWS sends it, for this group and instance."""
    event = golden("lifecycle_launch" if launching else "lifecycle_terminate")
    event["id"] = str(uuid.uuid4())
    event["region"] = region
    event["resources"] = [
        f"arn:aws:autoscaling:{region}:123456789012:autoScalingGroup:{uuid.uuid4()}:autoScalingGroupName/{group}"
    ]
    event["detail"].update(
        AutoScalingGroupName=group,
        EC2InstanceId=instance_id,
        LifecycleHookName=hook,
        LifecycleActionToken=token or str(uuid.uuid4()),
    )
    return event


def sqs_event(messages: list[dict[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping builds from messages it received."""
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


@dataclass
class LambdaContext:
    function_name: str = "sgmesh-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:sgmesh-test"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
