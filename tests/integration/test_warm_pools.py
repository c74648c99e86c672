"""Groups with a warm pool: an instance parked in the pool is never a member, and one coming out of
it is published with the public IP it got on start, its old address revoked everywhere."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sgmesh.local.warm_pool import BACK_TO_POOL, INTO_POOL, OUT_OF_POOL, WarmPool
from tests.support.mesh import TWO_REGIONS, Mesh, Provisioner

EAST, WEST = TWO_REGIONS


@pytest.fixture
def mesh(aws: str, provisioned: Provisioner) -> Mesh:
    mesh = provisioned(Mesh(aws, TWO_REGIONS))
    for region in mesh.regions:
        mesh.trueup(region)
    mesh.settle()
    mesh.assert_converged()
    return mesh


@pytest.fixture
def pool(mesh: Mesh) -> WarmPool:
    pool = WarmPool()
    pool.register(mesh.factory.autoscaling(EAST))
    return pool


def public_ip(mesh: Mesh, instance_id: str) -> str:
    (reservation,) = mesh.ec2(EAST).describe_instances(InstanceIds=[instance_id])["Reservations"]
    address: str = reservation["Instances"][0]["PublicIpAddress"]
    return address


def admitted(mesh: Mesh) -> dict[str, set[str]]:
    """region -> the addresses its managed rules admit."""
    return {region: {cidr for *_, cidr in mesh.managed_permissions(region)} for region in mesh.regions}


def published_snapshots(mesh: Mesh) -> list[dict[str, Any]]:
    return [
        json.loads(call.params["Message"])
        for invocation in mesh.handled(EAST, "lifecycle")
        for call in invocation.calls
        if call.operation == "Publish"
    ]


def hold(mesh: Mesh, pool: WarmPool, instance_id: str, transition: tuple[bool, str, str]) -> dict[str, Any]:
    """The group holds the instance at sgmesh's hook for this warm-pool transition; the event AWS sends."""
    launching = transition[0]
    hook = mesh.spec.launch_hook if launching else mesh.spec.terminate_hook
    group = mesh.stacks[EAST].group_name
    return pool.action_event(
        region=EAST, group=group, hook=hook, instance_id=instance_id, transition=transition
    )


def test_an_instance_launched_into_the_warm_pool_is_not_published_and_its_hook_is_continued(
    mesh: Mesh, pool: WarmPool
) -> None:
    # GIVEN the group launches an instance into its warm pool (it runs, with a public IP, until the
    # pool stops it) and holds it at sgmesh's launch hook in Warmed:Pending:Wait
    stack = mesh.stacks[EAST]
    before = set(mesh.members(EAST))
    mesh.autoscaling(EAST).set_desired_capacity(
        AutoScalingGroupName=stack.group_name, DesiredCapacity=len(before) + 1
    )
    (warming,) = set(mesh.members(EAST)) - before
    pool.states[warming] = "Warmed:Pending:Wait"
    event = hold(mesh, pool, warming, INTO_POOL)
    # WHEN EventBridge delivers its lifecycle event and every queue is delivered
    mesh.lifecycle(EAST, event)
    mesh.settle()
    # THEN no snapshot carries it, no region admits its address, and the product continued its action
    assert all(
        warming not in [member["instance_id"] for member in snapshot["members"]]
        for snapshot in published_snapshots(mesh)
    )
    address = f"{public_ip(mesh, warming)}/32"
    assert all(address not in addresses for addresses in admitted(mesh).values())
    assert pool.completed == [
        {
            "AutoScalingGroupName": stack.group_name,
            "LifecycleHookName": mesh.spec.launch_hook,
            "LifecycleActionToken": event["detail"]["LifecycleActionToken"],
            "InstanceId": warming,
            "LifecycleActionResult": "CONTINUE",
        }
    ]


def test_a_member_back_from_the_warm_pool_is_published_with_its_new_address_and_the_old_one_revoked(
    mesh: Mesh, pool: WarmPool
) -> None:
    member = sorted(mesh.members(EAST))[0]
    old = f"{public_ip(mesh, member)}/32"
    assert all(old in addresses for addresses in admitted(mesh).values())

    # GIVEN a scale-in that returns the member to the warm pool (instance reuse), where it is stopped
    pool.states[member] = "Warmed:Pending:Wait"
    mesh.lifecycle(EAST, hold(mesh, pool, member, BACK_TO_POOL))
    mesh.settle()
    assert all(old not in addresses for addresses in admitted(mesh).values())
    mesh.ec2(EAST).stop_instances(InstanceIds=[member])
    pool.states[member] = "Warmed:Stopped"

    # WHEN a scale-out takes it out of the pool: it starts (a new public IP) and waits at the launch hook
    mesh.ec2(EAST).start_instances(InstanceIds=[member])
    new = f"{public_ip(mesh, member)}/32"
    assert new != old, "moto gave the restarted instance its old address: the test would prove nothing"
    pool.states[member] = "Pending:Wait"
    event = hold(mesh, pool, member, OUT_OF_POOL)
    mesh.lifecycle(EAST, event)
    mesh.settle()

    # THEN the newest snapshot carries it with the new address, every region admits only that one,
    # and the product continued its action
    newest = published_snapshots(mesh)[-1]
    (published,) = [m for m in newest["members"] if m["instance_id"] == member]
    assert published["public_ipv4"] == new
    for addresses in admitted(mesh).values():
        assert new in addresses
        assert old not in addresses
    assert [done["LifecycleActionToken"] for done in pool.completed][-1] == event["detail"][
        "LifecycleActionToken"
    ]
    assert pool.pending == {}
    mesh.assert_converged()
