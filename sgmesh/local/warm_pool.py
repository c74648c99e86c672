"""Plays an Auto Scaling warm pool, which moto lacks (it keeps only the pool's configuration).

Instances parked in the pool show their `Warmed:*` state in the product's DescribeAutoScalingGroups,
their lifecycle events carry AWS's `Origin` and `Destination`, and the product's
CompleteLifecycleAction for a warm-pool action is answered here and recorded, parameters included.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from sgmesh.local.eventbridge import lifecycle_event
from sgmesh.local.stack import ACCOUNT

# (launching, origin, destination) of each warm-pool transition AWS reports with a lifecycle event.
INTO_POOL = (True, "EC2", "WarmPool")
OUT_OF_POOL = (True, "WarmPool", "AutoScalingGroup")
BACK_TO_POOL = (False, "AutoScalingGroup", "WarmPool")
TERMINATED_IN_POOL = (False, "WarmPool", "EC2")


@dataclass
class WarmPool:
    """Parked instances (id -> Warmed:* state), and the warm-pool actions still waiting for the product."""

    states: dict[str, str] = field(default_factory=dict)
    pending: dict[str, dict[str, str]] = field(default_factory=dict)
    completed: list[dict[str, str]] = field(default_factory=list)

    def action_event(
        self, *, region: str, group: str, hook: str, instance_id: str, transition: tuple[bool, str, str]
    ) -> dict[str, Any]:
        """Hold the instance at `hook` for this warm-pool transition; return the event AWS would send."""
        launching, origin, destination = transition
        token = str(uuid.uuid4())
        self.pending[token] = {
            "AutoScalingGroupName": group,
            "LifecycleHookName": hook,
            "InstanceId": instance_id,
        }
        event = lifecycle_event(
            account=ACCOUNT,
            region=region,
            group=group,
            instance_id=instance_id,
            launching=launching,
            hook=hook,
            token=token,
        )
        event["detail"].update({"Origin": origin, "Destination": destination})
        return event

    def register(self, client: Any) -> None:
        """On the product's Auto Scaling client (clients are cached per region, so this sticks)."""
        request: dict[str, Any] = {}

        def capture(params: dict[str, Any], **_: Any) -> None:
            request.clear()
            request.update(params)

        def complete(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
            held = self.pending.get(request.get("LifecycleActionToken", ""))
            if held is None or any(request.get(key) != value for key, value in held.items()):
                return None  # not a warm-pool action: the lifecycle-hook emulation answers it
            del self.pending[request["LifecycleActionToken"]]
            self.completed.append({key: str(value) for key, value in request.items()})
            return AWSResponse("", 200, HTTPHeaders(), None), {"ResponseMetadata": {"HTTPStatusCode": 200}}

        def show_warmed(parsed: dict[str, Any], **_: Any) -> None:
            for group in parsed.get("AutoScalingGroups", []):
                for instance in group.get("Instances", []):
                    if instance["InstanceId"] in self.states:
                        instance["LifecycleState"] = self.states[instance["InstanceId"]]

        events = client.meta.events
        events.register_first("before-parameter-build.auto-scaling.CompleteLifecycleAction", capture)
        events.register_first("before-call.auto-scaling.CompleteLifecycleAction", complete)
        events.register("after-call.auto-scaling.DescribeAutoScalingGroups", show_warmed)
