"""The replication story on three regions: every step converges every group, and no handler writes
outside its own region."""

from __future__ import annotations

from tests.support.mesh import Mesh


def step_converged(mesh: Mesh) -> None:
    mesh.settle()
    mesh.assert_converged()
    assert mesh.cross_region_writes() == []


def scale_to(mesh: Mesh, region: str, capacity: int) -> tuple[set[str], set[str]]:
    """Scale the group in moto; return (launched, removed) instance ids."""
    before = set(mesh.live_instances(region))
    mesh.autoscaling(region).set_desired_capacity(
        AutoScalingGroupName=mesh.stacks[region].group_name, DesiredCapacity=capacity
    )
    after = set(mesh.live_instances(region))
    return after - before, before - after


def test_every_region_converges_through_scaling_hand_termination_and_zero(mesh: Mesh) -> None:
    # GIVEN three regions with two instances each, WHEN each region trues up
    for region in mesh.regions:
        mesh.trueup(region)
    step_converged(mesh)
    assert len(mesh.expected_permissions()) == 6 * 2

    # WHEN us-east-1 scales out: each new instance's launch hook fires the producer
    launched, _ = scale_to(mesh, "us-east-1", 4)
    assert len(launched) == 2
    for instance_id in sorted(launched):
        mesh.lifecycle_action("us-east-1", instance_id, launching=True)
    step_converged(mesh)
    # THEN each launch hook was completed with CONTINUE, with the token AWS sent
    completed = {
        (c.region, c.group_name, c.hook_name, c.instance_id, c.result) for c in mesh.hooks.completions
    }
    assert completed == {
        ("us-east-1", "sgmesh-us-east-1", "sgmesh-launching", instance_id, "CONTINUE")
        for instance_id in launched
    }
    assert mesh.hooks.pending == {}

    # WHEN us-west-2 scales in: the terminate hook fires while the instance still runs
    leaving = sorted(mesh.live_instances("us-west-2"))[0]
    mesh.lifecycle_action("us-west-2", leaving, launching=False)
    mesh.settle()
    leaving_address = f"{mesh.live_instances('us-west-2')[leaving]}/32"
    for region in mesh.regions:
        assert all(cidr != leaving_address for *_ports, cidr in mesh.managed_permissions(region))
    # ... and after CONTINUE, Auto Scaling terminates it
    mesh.autoscaling("us-west-2").terminate_instance_in_auto_scaling_group(
        InstanceId=leaving, ShouldDecrementDesiredCapacity=True
    )
    step_converged(mesh)

    # WHEN an operator terminates an eu-west-1 instance by hand: no lifecycle event, only the true-up
    victim = sorted(mesh.live_instances("eu-west-1"))[0]
    mesh.ec2("eu-west-1").terminate_instances(InstanceIds=[victim])
    mesh.trueup("eu-west-1")
    step_converged(mesh)
    assert victim not in mesh.live_instances("eu-west-1")

    # WHEN us-west-2 scales to zero, its rules disappear everywhere
    _, removed = scale_to(mesh, "us-west-2", 0)
    assert removed
    mesh.trueup("us-west-2")
    step_converged(mesh)
    assert mesh.live_instances("us-west-2") == {}

    # WHEN it scales back
    launched, _ = scale_to(mesh, "us-west-2", 2)
    for instance_id in sorted(launched):
        mesh.lifecycle_action("us-west-2", instance_id, launching=True)
    step_converged(mesh)


def test_seed_trueup_event_is_accepted_by_the_lifecycle_handler(mesh: Mesh) -> None:
    stack = mesh.stacks["us-west-2"]
    result = mesh.lifecycle(
        "us-west-2", {"detail": {"AutoScalingGroupName": stack.group_name}, "trueup": True}
    )
    assert [item["group"] for item in result["published"]] == [stack.group_name]
    mesh.settle()
    west = {f"{ip}/32" for ip in mesh.live_instances("us-west-2").values()}
    for region in mesh.regions:
        assert {cidr for *_ports, cidr in mesh.managed_permissions(region)} == west
