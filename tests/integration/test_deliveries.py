"""At-least-once, unordered delivery: any duplication and order of real SNS->SQS messages converges,
and a stale snapshot changes nothing in EC2."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgmesh.local.stack import create_table
from tests.support.mesh import Mesh


def snapshot_of(message: dict[str, Any]) -> dict[str, Any]:
    snapshot: dict[str, Any] = json.loads(json.loads(message["Body"])["Message"])
    return snapshot


def capture_history(mesh: Mesh) -> list[dict[str, Any]]:
    """Publish a history of snapshots (several versions per source) and take what eu-west-1 received."""
    for region in mesh.regions:
        mesh.trueup(region)
    group = mesh.stacks["us-east-1"].group_name
    for capacity in (4, 1, 3):
        mesh.autoscaling("us-east-1").set_desired_capacity(
            AutoScalingGroupName=group, DesiredCapacity=capacity
        )
        mesh.trueup("us-east-1")
    mesh.trueup("us-west-2")
    return mesh.drain("eu-west-1")


def fresh_consumer_target(mesh: Mesh, region: str) -> None:
    """Point the region's consumer at a new, empty table and group, so each example starts clean."""
    suffix = uuid.uuid4().hex[:8]
    stack = mesh.stacks[region]
    table = f"sgmesh-{region}-{suffix}"
    create_table(mesh.session, region, table)
    group_id = mesh.ec2(region).create_security_group(GroupName=f"sgmesh-{suffix}", Description="example")[
        "GroupId"
    ]
    stack.table_name, stack.security_group_id = table, group_id
    stack.environment.update(SGMESH_TABLE_NAME=table, SGMESH_SECURITY_GROUP_IDS=group_id)


def newest_addresses(history: list[dict[str, Any]]) -> set[str]:
    newest: dict[str, dict[str, Any]] = {}
    for message in history:
        snapshot = snapshot_of(message)
        key = json.dumps(snapshot["source"], sort_keys=True)
        if key not in newest or snapshot["version"] > newest[key]["version"]:
            newest[key] = snapshot
    return {member["public_ipv4"] for snapshot in newest.values() for member in snapshot["members"]}


def test_any_order_and_duplication_of_deliveries_converges(mesh: Mesh) -> None:
    history = capture_history(mesh)
    versions = sorted((snapshot_of(m)["source"]["region"], snapshot_of(m)["version"]) for m in history)
    assert len(history) == 7, versions
    expected_cidrs = newest_addresses(history)
    assert expected_cidrs == {
        f"{ip}/32" for r in ("us-east-1", "us-west-2", "eu-west-1") for ip in mesh.members(r).values()
    }

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        order=st.permutations(range(len(history))),
        copies=st.lists(st.integers(1, 3), min_size=len(history), max_size=len(history)),
        batch_size=st.integers(1, 10),
    )
    def deliveries_converge(order: list[int], copies: list[int], batch_size: int) -> None:
        fresh_consumer_target(mesh, "eu-west-1")
        schedule = [history[index] for index in order for _ in range(copies[index])]
        for start in range(0, len(schedule), batch_size):
            batch = schedule[start : start + batch_size]
            # SQS hands out distinct message ids per delivery; duplicates are new receipts of one body.
            batch = [{**message, "MessageId": str(uuid.uuid4())} for message in batch]
            assert mesh.deliver("eu-west-1", batch)["batchItemFailures"] == []
        assert {cidr for *_ports, cidr in mesh.managed_permissions("eu-west-1")} == expected_cidrs

    deliveries_converge()


def test_a_stale_snapshot_makes_no_mutating_ec2_call(mesh: Mesh) -> None:
    # GIVEN eu-west-1 applied version 1 and then version 2 of us-east-1
    mesh.trueup("us-east-1")
    first = mesh.drain("eu-west-1")
    mesh.autoscaling("us-east-1").set_desired_capacity(
        AutoScalingGroupName=mesh.stacks["us-east-1"].group_name, DesiredCapacity=3
    )
    mesh.trueup("us-east-1")
    second = mesh.drain("eu-west-1")
    mesh.deliver("eu-west-1", first)
    mesh.deliver("eu-west-1", second)
    converged = mesh.managed_permissions("eu-west-1")
    assert len(converged) == 3 * 2

    # WHEN version 1 arrives again (late redelivery), and version 2 is duplicated
    for stale in (first, second):
        response = mesh.deliver("eu-west-1", stale)

        # THEN it is acknowledged, nothing changes, and no mutating EC2 call was made
        assert response["batchItemFailures"] == []
        calls = mesh.invocations[-1].calls
        assert [c.operation for c in calls if c.service == "ec2" and c.mutating] == []
        assert mesh.managed_permissions("eu-west-1") == converged
