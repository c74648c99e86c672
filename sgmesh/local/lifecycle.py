"""Plays Auto Scaling lifecycle hooks, which moto lacks: instances wait in Pending:Wait or
Terminating:Wait until CompleteLifecycleAction, or until the heartbeat timeout applies the
hook's DefaultResult.

moto launches and terminates at once, so launches are let through moto and held here, while
terminations are held here and only then carried out in moto. The product sees the waiting
states through its own DescribeAutoScalingGroups (rewritten after the call) and completes actions
through the emulated CompleteLifecycleAction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from boto3.session import Session
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from sgmesh.local.clock import SimClock
from sgmesh.local.eventbridge import EventBus, lifecycle_event
from sgmesh.local.stack import ACCOUNT, RegionStack, StackSpec

RESULTS = frozenset({"CONTINUE", "ABANDON"})


@dataclass(frozen=True)
class PendingAction:
    region: str
    group_name: str
    hook_name: str
    instance_id: str
    token: str
    launching: bool
    deadline: float
    held_at: float = 0.0  # when Auto Scaling put the instance at the hook (simulated time)

    def event(self, token: str | None = None) -> dict[str, Any]:
        """The EventBridge event announcing this action (with another token: a stale or forged one)."""
        return lifecycle_event(
            account=ACCOUNT,
            region=self.region,
            group=self.group_name,
            instance_id=self.instance_id,
            launching=self.launching,
            hook=self.hook_name,
            token=self.token if token is None else token,
        )

    def completion(self, result: str, *, by_timeout: bool, at: float | None = None) -> Completion:
        """How it ended; `at` (simulated time) tells how long it waited, if known."""
        return Completion(
            self.region,
            self.group_name,
            self.hook_name,
            self.instance_id,
            self.token,
            result,
            by_timeout,
            waited=0.0 if at is None else at - self.held_at,
        )


@dataclass(frozen=True)
class Completion:
    """How an action ended: by the product (CompleteLifecycleAction) or by the heartbeat timeout."""

    region: str
    group_name: str
    hook_name: str
    instance_id: str
    token: str
    result: str
    by_timeout: bool
    # Seconds (simulated) the instance waited at the hook: what the admission barrier costs a launch.
    waited: float = field(default=0.0, compare=False)


class LifecycleHooks:
    def __init__(self, session: Session, clock: SimClock, bus: EventBus, spec: StackSpec) -> None:
        self._session = session
        self._clock = clock
        self._bus = bus
        self._spec = spec
        self.pending: dict[str, PendingAction] = {}
        self.completions: list[Completion] = []

    # -- what Auto Scaling does when a group changes --------------------------------------------

    def launched(self, stack: RegionStack, instance_ids: list[str]) -> None:
        for instance_id in instance_ids:
            self._hold(stack.region, stack.group_name, instance_id, launching=True)

    def terminate(self, stack: RegionStack, instance_ids: list[str]) -> None:
        for instance_id in instance_ids:
            self._hold(stack.region, stack.group_name, instance_id, launching=False)

    def waiting_state(self, instance_id: str) -> str | None:
        for action in self.pending.values():
            if action.instance_id == instance_id:
                return "Pending:Wait" if action.launching else "Terminating:Wait"
        return None

    @property
    def next_deadline(self) -> float | None:
        return min((action.deadline for action in self.pending.values()), default=None)

    def expire_due(self) -> int:
        expired = [action for action in self.pending.values() if action.deadline <= self._clock.now]
        for action in expired:
            self._finish(action, self._spec.default_result, by_timeout=True)
        return len(expired)

    def _hold(self, region: str, group_name: str, instance_id: str, *, launching: bool) -> None:
        hook = self._spec.launch_hook if launching else self._spec.terminate_hook
        action = PendingAction(
            region=region,
            group_name=group_name,
            hook_name=hook,
            instance_id=instance_id,
            token=str(uuid.uuid4()),
            launching=launching,
            deadline=self._clock.now + self._spec.heartbeat_timeout_seconds,
            held_at=self._clock.now,
        )
        self.pending[action.token] = action
        self._bus.put(region, action.event())

    def _finish(self, action: PendingAction, result: str, *, by_timeout: bool) -> None:
        del self.pending[action.token]
        self.completions.append(action.completion(result, by_timeout=by_timeout, at=self._clock.now))
        if action.launching and result == "CONTINUE":
            return  # into service
        autoscaling = self._session.client("autoscaling", region_name=action.region)
        if not action.launching:
            autoscaling.terminate_instance_in_auto_scaling_group(
                InstanceId=action.instance_id, ShouldDecrementDesiredCapacity=True
            )
            return
        # An ABANDONed launch is terminated and the group, still wanting its capacity, launches a
        # replacement, which waits at the launch hook like any other.
        before = _group_instances(autoscaling, action.group_name)
        autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=action.instance_id, ShouldDecrementDesiredCapacity=False
        )
        for replacement in sorted(_group_instances(autoscaling, action.group_name) - before):
            self._hold(action.region, action.group_name, replacement, launching=True)

    # -- what the product's Auto Scaling clients see ---------------------------------------------

    def register(self, client: Any) -> None:
        if client.meta.service_model.service_id.hyphenize() != "auto-scaling":
            return
        region = client.meta.region_name
        request: dict[str, Any] = {}

        def capture(params: dict[str, Any], **_: Any) -> None:
            request.clear()
            request.update(params)

        def complete(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            return self._complete(region, dict(request))

        def show_waiting(parsed: dict[str, Any], **_: Any) -> None:
            for group in parsed.get("AutoScalingGroups", []):
                for instance in group.get("Instances", []):
                    state = self.waiting_state(instance["InstanceId"])
                    if state is not None:
                        instance["LifecycleState"] = state

        events = client.meta.events
        events.register("before-parameter-build.auto-scaling.CompleteLifecycleAction", capture)
        events.register("before-call.auto-scaling.CompleteLifecycleAction", complete)
        events.register("after-call.auto-scaling.DescribeAutoScalingGroups", show_waiting)

    def _complete(self, region: str, request: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        action = self.pending.get(request.get("LifecycleActionToken", ""))
        if (
            action is None
            or (action.region, action.group_name, action.hook_name)
            != (region, request.get("AutoScalingGroupName"), request.get("LifecycleHookName"))
            or request.get("InstanceId", action.instance_id) != action.instance_id
            or request.get("LifecycleActionResult") not in RESULTS
        ):
            error = {"Code": "ValidationError", "Message": "No active Lifecycle Action found with token"}
            return AWSResponse("", 400, HTTPHeaders(), None), {
                "Error": error,
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        self._finish(action, request["LifecycleActionResult"], by_timeout=False)
        return AWSResponse("", 200, HTTPHeaders(), None), {"ResponseMetadata": {"HTTPStatusCode": 200}}


def _group_instances(autoscaling: Any, group_name: str) -> set[str]:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    return {instance["InstanceId"] for group in groups for instance in group.get("Instances", [])}
