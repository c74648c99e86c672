"""The replication story on three regions: every step converges every group, and no handler writes
outside its own region."""

from __future__ import annotations

from sgmesh.local.lifecycle import Completion, PendingAction
from tests.support.mesh import Mesh


def step_converged(mesh: Mesh) -> None:
    mesh.settle()
    mesh.assert_converged()
    assert mesh.cross_region_writes() == []


def scale_to(mesh: Mesh, region: str, capacity: int) -> tuple[set[str], set[str]]:
    """Scale the group in moto; return (launched, removed) instance ids."""
    before = set(mesh.members(region))
    mesh.autoscaling(region).set_desired_capacity(
        AutoScalingGroupName=mesh.stacks[region].group_name, DesiredCapacity=capacity
    )
    after = set(mesh.members(region))
    return after - before, before - after


def completed_with_continue(action: PendingAction) -> Completion:
    return Completion(
        action.region,
        action.group_name,
        action.hook_name,
        action.instance_id,
        action.token,
        "CONTINUE",
        by_timeout=False,
    )


def assert_completed_by_the_product(mesh: Mesh, actions: list[PendingAction]) -> None:
    """Each action was completed with CONTINUE by the product's own call, with the token AWS sent."""
    assert mesh.hooks.completions[-len(actions) :] == [completed_with_continue(a) for a in actions]
    calls = mesh.completion_calls()[-len(actions) :]
    assert [(call.region, call.params) for call in calls] == [
        (
            action.region,
            {
                "AutoScalingGroupName": action.group_name,
                "LifecycleHookName": action.hook_name,
                "LifecycleActionToken": action.token,
                "InstanceId": action.instance_id,
                "LifecycleActionResult": "CONTINUE",
            },
        )
        for action in actions
    ]
    assert mesh.hooks.pending == {}


def test_every_region_converges_through_scaling_hand_termination_and_zero(mesh: Mesh) -> None:
    # GIVEN three regions with two instances each, WHEN each region trues up
    for region in mesh.regions:
        mesh.trueup(region)
    step_converged(mesh)
    assert len(mesh.expected_permissions()) == 6 * 2

    # WHEN us-east-1 scales out: each new instance's launch hook fires the producer
    launched, _ = scale_to(mesh, "us-east-1", 4)
    assert len(launched) == 2
    actions = [mesh.lifecycle_action("us-east-1", i, launching=True) for i in sorted(launched)]
    step_converged(mesh)
    # THEN each launch hook was completed with CONTINUE, with the token AWS sent
    assert {(a.region, a.group_name, a.hook_name) for a in actions} == {
        ("us-east-1", "sgmesh-demo-us-east-1", "sgmesh-demo-launching")
    }
    assert_completed_by_the_product(mesh, actions)

    # WHEN us-west-2 scales in: the terminate hook holds the instance while the producer publishes
    leaving = sorted(mesh.members("us-west-2"))[0]
    leaving_address = f"{mesh.members('us-west-2')[leaving]}/32"
    action = mesh.lifecycle_action("us-west-2", leaving, launching=False)
    # THEN the hook was completed with CONTINUE, and after it Auto Scaling terminated the instance
    assert (action.group_name, action.hook_name) == ("sgmesh-demo-us-west-2", "sgmesh-demo-terminating")
    assert_completed_by_the_product(mesh, [action])
    assert mesh.instance_state("us-west-2", leaving) in ("shutting-down", "terminated")
    assert leaving not in mesh.members("us-west-2")
    # ... and its address left every group
    step_converged(mesh)
    for region in mesh.regions:
        assert all(cidr != leaving_address for *_ports, cidr in mesh.managed_permissions(region))

    # WHEN an operator terminates an eu-west-1 instance by hand: no lifecycle event, only the true-up
    victim = mesh.terminate_by_hand("eu-west-1")
    mesh.trueup("eu-west-1")
    step_converged(mesh)
    assert victim not in mesh.members("eu-west-1")

    # WHEN us-west-2 scales to zero, its rules disappear everywhere
    _, removed = scale_to(mesh, "us-west-2", 0)
    assert removed
    mesh.trueup("us-west-2")
    step_converged(mesh)
    assert mesh.members("us-west-2") == {}

    # WHEN it scales back
    launched, _ = scale_to(mesh, "us-west-2", 2)
    actions = [mesh.lifecycle_action("us-west-2", i, launching=True) for i in sorted(launched)]
    step_converged(mesh)
    assert_completed_by_the_product(mesh, actions)


def test_seed_trueup_event_is_accepted_by_the_lifecycle_handler(mesh: Mesh) -> None:
    stack = mesh.stacks["us-west-2"]
    result = mesh.lifecycle(
        "us-west-2", {"detail": {"AutoScalingGroupName": stack.group_name}, "trueup": True}
    )
    assert [item["group"] for item in result["published"]] == [stack.group_name]
    mesh.settle()
    west = {f"{ip}/32" for ip in mesh.members("us-west-2").values()}
    for region in mesh.regions:
        assert {cidr for *_ports, cidr in mesh.managed_permissions(region)} == west
