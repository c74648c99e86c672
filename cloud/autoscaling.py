"""Auto Scaling adapter: list groups' instances and complete lifecycle actions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from schemas.inventory import GroupInstance
from schemas.lifecycle import LifecycleAction

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient

# DescribeAutoScalingGroups takes at most 100 names per call.
NAMES_PER_CALL = 100


class AutoScaling:
    def __init__(self, client: AutoScalingClient) -> None:
        self._client = client

    def group_instances(self, names: Sequence[str]) -> dict[str, tuple[GroupInstance, ...]]:
        """Instances of each named group that exists; missing groups are absent from the result."""
        groups: dict[str, tuple[GroupInstance, ...]] = {}
        paginator = self._client.get_paginator("describe_auto_scaling_groups")
        for start in range(0, len(names), NAMES_PER_CALL):
            batch = list(names[start : start + NAMES_PER_CALL])
            for page in paginator.paginate(AutoScalingGroupNames=batch):
                for group in page["AutoScalingGroups"]:
                    groups[group["AutoScalingGroupName"]] = tuple(
                        GroupInstance(
                            instance_id=instance["InstanceId"],
                            lifecycle_state=instance["LifecycleState"],
                            availability_zone=instance.get("AvailabilityZone"),
                        )
                        for instance in group.get("Instances", [])
                    )
        return groups

    def complete(self, action: LifecycleAction, result: str = "CONTINUE") -> bool:
        """Complete the action (CONTINUE unless told); False when AWS no longer has it (already
        completed, or timed out)."""
        try:
            self._client.complete_lifecycle_action(
                AutoScalingGroupName=action.group_name,
                LifecycleHookName=action.hook_name,
                LifecycleActionToken=action.token,
                InstanceId=action.instance_id,
                LifecycleActionResult=result,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ValidationError":
                return False
            raise
        return True
