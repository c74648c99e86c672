"""Plays EventBridge (lifecycle events in AWS's exact shape) and Lambda's asynchronous invocation
(two retries, then the function's on-failure destination)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sgmesh.local.clock import SimClock

ASYNC_RETRY_DELAYS_SECONDS = (60, 120)


def lifecycle_event(
    *, account: str, region: str, group: str, instance_id: str, launching: bool, hook: str, token: str
) -> dict[str, Any]:
    """An "EC2 Instance-launch/terminate Lifecycle Action" event as EventBridge delivers it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": f"EC2 Instance-{'launch' if launching else 'terminate'} Lifecycle Action",
        "source": "aws.autoscaling",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [
            f"arn:aws:autoscaling:{region}:{account}:autoScalingGroup:{uuid.uuid4()}:autoScalingGroupName/{group}"
        ],
        "detail": {
            "LifecycleActionToken": token,
            "AutoScalingGroupName": group,
            "LifecycleHookName": hook,
            "EC2InstanceId": instance_id,
            "LifecycleTransition": f"autoscaling:EC2_INSTANCE_{'LAUNCHING' if launching else 'TERMINATING'}",
            "NotificationMetadata": "",
            "Origin": "EC2" if launching else "AutoScalingGroup",
            "Destination": "AutoScalingGroup" if launching else "EC2",
        },
    }


def scheduled_event(*, account: str, region: str, rule: str) -> dict[str, Any]:
    """A "Scheduled Event" as an EventBridge rate schedule delivers it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{rule}"],
        "detail": {},
    }


@dataclass(order=True)
class _Delivery:
    due: float
    region: str = field(compare=False)
    event: dict[str, Any] = field(compare=False)
    attempt: int = field(default=0, compare=False)


@dataclass(frozen=True)
class FailedDelivery:
    region: str
    event: dict[str, Any]
    error: str


class EventBus:
    """Delivers events to the producer of their region as asynchronous invocations."""

    def __init__(self, clock: SimClock, deliver: Callable[[str, dict[str, Any]], Any]) -> None:
        self._clock = clock
        self._deliver = deliver
        self._queue: list[_Delivery] = []
        self.failed: list[FailedDelivery] = []
        self.delivered = 0

    def put(self, region: str, event: dict[str, Any]) -> None:
        self._queue.append(_Delivery(self._clock.now, region, event))

    @property
    def next_due(self) -> float | None:
        return min((delivery.due for delivery in self._queue), default=None)

    def dispatch_due(self) -> int:
        due = sorted(delivery for delivery in self._queue if delivery.due <= self._clock.now)
        for delivery in due:
            self._queue.remove(delivery)
            try:
                self._deliver(delivery.region, delivery.event)
                self.delivered += 1
            except Exception as error:  # Lambda retries an asynchronous invocation on any error
                if delivery.attempt < len(ASYNC_RETRY_DELAYS_SECONDS):
                    delay = ASYNC_RETRY_DELAYS_SECONDS[delivery.attempt]
                    self._queue.append(
                        _Delivery(
                            self._clock.now + delay, delivery.region, delivery.event, delivery.attempt + 1
                        )
                    )
                else:
                    self.failed.append(FailedDelivery(delivery.region, delivery.event, repr(error)))
        return len(due)
