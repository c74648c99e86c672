"""Plays the lifecycle buffer: EventBridge's lifecycle rule targets an SQS queue (not the function),
and an event source mapping hands the producer batches of those events, so that a storm of launches
costs one describe and one publish per batch instead of per instance."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from boto3.session import Session

from sgmesh.local.clock import SimClock
from sgmesh.local.esm import EventSourceMapping
from sgmesh.local.stack import RegionStack, StackSpec, create_queue_with_dlq


@dataclass(frozen=True)
class BufferQueue:
    url: str
    arn: str
    dlq_url: str


def create_buffer(session: Session, stack: RegionStack, spec: StackSpec) -> BufferQueue:
    """The buffer queue and its dead-letter queue, with the settings the template gives them, and the
    template's lifecycle rule targeting it (which the local EventBridge, sgmesh.local.eventbridge,
    plays: moto's Auto Scaling emits no lifecycle event)."""
    queue = BufferQueue(
        *create_queue_with_dlq(
            session, stack.region, spec, spec.buffer_name, spec.buffer_visibility_timeout_seconds
        )
    )
    events = session.client("events", region_name=stack.region)
    pattern = {
        "source": ["aws.autoscaling"],
        "detail-type": ["EC2 Instance-launch Lifecycle Action", "EC2 Instance-terminate Lifecycle Action"],
        "detail": {
            "AutoScalingGroupName": [stack.group_name],
            "LifecycleHookName": [spec.launch_hook, spec.terminate_hook],
        },
    }
    events.put_rule(Name=spec.lifecycle_rule, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=spec.lifecycle_rule, Targets=[{"Id": "LifecycleBuffer", "Arn": queue.arn}])
    stack.buffer_url = queue.url
    return queue


class LifecycleBuffer:
    """One region's buffer: EventBridge's SQS target on one side, the producer's mapping on the other."""

    def __init__(
        self,
        session: Session,
        stack: RegionStack,
        spec: StackSpec,
        clock: SimClock,
        invoke: Callable[[dict[str, Any]], Any],
        queue: BufferQueue,
    ) -> None:
        self.queue = queue
        self._sqs = session.client("sqs", region_name=stack.region)
        # The mapping reads its queue from the stack and its timings from the spec: it gets views of
        # both with the buffer's queue and the lifecycle function's batching and timeout.
        self.mapping = EventSourceMapping(
            session,
            replace(stack, queue_url=queue.url, queue_arn=queue.arn, dlq_url=queue.dlq_url),
            replace(
                spec,
                batching_window_seconds=spec.buffer_batching_window_seconds,
                consumer_timeout_seconds=spec.lifecycle_timeout_seconds,
            ),
            clock,
            invoke,
        )

    def put(self, event: dict[str, Any]) -> None:
        """EventBridge's SQS target: the message body is the event, as AWS sends it."""
        self._sqs.send_message(QueueUrl=self.queue.url, MessageBody=json.dumps(event))
