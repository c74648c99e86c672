"""The 2017 AWS Compute Blog algorithm, modelled call for call: the reference sgmesh is measured against.

Per lifecycle event: describe the group, one DescribeInstances per instance, write the local list
unconditionally to the local AND the remote table, read the remote list, diff every permission of
the local and of the remote security group against (both lists x ports) and send an Authorize and a
Revoke to each where the diff is not empty, then CompleteLifecycleAction. Two regions only, as the
original. It runs on the local runtime's clients, so the same CallLedger counts it.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from schemas.settings import PortSpec
from sgmesh.local.mesh import LocalMesh
from sgmesh.local.stack import StackSpec

TABLE = "blog-security-group-ips"
Permission = tuple[str, int, int, str]


class BaselineMesh(LocalMesh):
    """A local mesh whose lifecycle events go to the blog's function instead of sgmesh's producer."""

    def __init__(self, endpoint: str, regions: tuple[str, str], spec: StackSpec | None = None) -> None:
        # The blog's rule invokes its function once per event: no buffering queue in between.
        super().__init__(endpoint, regions, replace(spec or StackSpec(), lifecycle_buffer=False))
        self.ports = tuple(PortSpec.parse(port) for port in self.spec.ports.split(","))

    def provision(self, instances_per_region: int = 2) -> BaselineMesh:
        super().provision(instances_per_region)
        for region in self.regions:
            self.session.client("dynamodb", region_name=region).create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "asg", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "asg", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        return self

    def lifecycle(self, region: str, event: dict[str, Any]) -> Any:
        self.blog_function(region, event["detail"], complete=True)

    def trueup_everywhere(self) -> None:
        """The blog's manual "true up" invocation, in each region: the same function, no hook."""
        for region in self.regions:
            group = self.stacks[region].group_name
            self.blog_function(region, {"AutoScalingGroupName": group}, complete=False)

    def blog_function(self, region: str, detail: dict[str, Any], *, complete: bool) -> None:
        (remote,) = (other for other in self.regions if other != region)
        local_stack, remote_stack = self.stacks[region], self.stacks[remote]
        autoscaling = self.factory.autoscaling(region)
        ec2 = self.factory.ec2(region)
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[local_stack.group_name])
        leaving = (
            detail.get("EC2InstanceId") if "TERMINATING" in detail.get("LifecycleTransition", "") else None
        )
        local_ips: list[str] = []
        for instance in group["AutoScalingGroups"][0]["Instances"]:
            if instance["InstanceId"] == leaving:
                continue
            # The original asks for each instance on its own: the call count grows with the group.
            reservations = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"]
            address = reservations[0]["Instances"][0].get("PublicIpAddress")
            if address:
                local_ips.append(address)
        item: dict[str, Any] = {
            "asg": {"S": local_stack.group_name},
            "ips": {"L": [{"S": ip} for ip in local_ips]},
        }
        # Unconditional writes: the local table, and the other region's (the cross-region write).
        self.factory.dynamodb(region).put_item(TableName=TABLE, Item=item)
        self.factory.dynamodb(remote).put_item(TableName=TABLE, Item=item)
        stored = self.factory.dynamodb(region).get_item(
            TableName=TABLE, Key={"asg": {"S": remote_stack.group_name}}
        )
        remote_ips = [value["S"] for value in stored.get("Item", {}).get("ips", {}).get("L", [])]
        desired: set[Permission] = {
            (str(p.protocol), p.from_port, p.to_port, f"{ip}/32")
            for p in self.ports
            for ip in local_ips + remote_ips
        }
        for target_region, group_id in (
            (region, local_stack.security_group_id),
            (remote, remote_stack.security_group_id),
        ):
            self._sync_group(target_region, group_id, desired)
        if complete:
            autoscaling.complete_lifecycle_action(
                LifecycleHookName=detail["LifecycleHookName"],
                AutoScalingGroupName=detail["AutoScalingGroupName"],
                LifecycleActionToken=detail["LifecycleActionToken"],
                LifecycleActionResult="CONTINUE",
            )

    def _sync_group(self, region: str, group_id: str, desired: set[Permission]) -> None:
        """Every CIDR of the group is the function's (the original takes over the whole group)."""
        ec2 = self.factory.ec2(region)
        (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
        actual = {
            (p["IpProtocol"], p.get("FromPort", -1), p.get("ToPort", -1), ip_range["CidrIp"])
            for p in group["IpPermissions"]
            for ip_range in p.get("IpRanges", [])
        }
        # The original swallows errors (a quota, a throttle): the event is answered anyway.
        if missing := desired - actual:
            _call_quietly(
                ec2.authorize_security_group_ingress, GroupId=group_id, IpPermissions=_permissions(missing)
            )
        if extra := actual - desired:
            _call_quietly(
                ec2.revoke_security_group_ingress, GroupId=group_id, IpPermissions=_permissions(extra)
            )


def _permissions(permissions: set[Permission]) -> list[Any]:
    return [
        {"IpProtocol": protocol, "FromPort": low, "ToPort": high, "IpRanges": [{"CidrIp": cidr}]}
        for protocol, low, high, cidr in sorted(permissions)
    ]


def _call_quietly(call: Any, **params: Any) -> None:
    # The modelled flaw: the blog's function logs an error and carries on.
    with contextlib.suppress(Exception):
        call(**params)
