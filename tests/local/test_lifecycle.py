"""The emulated lifecycle hooks: waiting states, CompleteLifecycleAction, and the heartbeat timeout."""

from __future__ import annotations

import logging
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sgmesh.local.stack import StackSpec
from tests.support.mesh import TWO_REGIONS, Mesh, Provisioner

GONE = ("shutting-down", "terminated")


def converge(mesh: Mesh) -> None:
    mesh.trueup_everywhere()
    assert mesh.run_until_converged().converged


def restore_topic(mesh: Mesh, region: str) -> None:
    """Recreate the region's topic (same ARN) with every region's queue subscribed again."""
    topic_arn = mesh.stacks[region].topic_arn
    mesh.sns(region).create_topic(Name=topic_arn.rsplit(":", 1)[1])
    for stack in mesh.stacks.values():
        mesh.sns(region).subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=stack.queue_arn,
            Attributes={"RawMessageDelivery": "false"},
        )


def test_given_a_scale_out_then_the_instance_waits_in_pending_wait_until_the_producer_completes_it(
    mesh: Mesh,
) -> None:
    # GIVEN a converged mesh, WHEN us-east-1 scales out
    converge(mesh)
    (launched,) = mesh.scale("us-east-1", 3)
    (action,) = mesh.hooks.pending.values()

    # THEN until the producer runs, the product's describe shows the instance in Pending:Wait
    states = mesh.product_lifecycle_states("us-east-1")
    assert states.pop(launched) == "Pending:Wait"
    assert set(states.values()) == {"InService"}
    assert mesh.instance_state("us-east-1", launched) == "running"

    # WHEN EventBridge delivers the launch event to the producer, through the buffer
    mesh.deliver_lifecycle_events("us-east-1", 1)

    # THEN it published the instance as a member (seen in Pending:Wait) and completed the action
    (snapshot,) = mesh.queued_snapshots("us-west-2")
    assert snapshot["cause"] == {
        "kind": "launching",
        "instance_id": launched,
        "lifecycle_hook": "sgmesh-demo-launching",
        "lifecycle_token": action.token,
    }
    assert {m["instance_id"]: m["lifecycle_state"] for m in snapshot["members"]}[launched] == "Pending:Wait"
    assert mesh.hooks.completions == [action.completion("CONTINUE", by_timeout=False)]
    assert mesh.hooks.pending == {}
    assert mesh.product_lifecycle_states("us-east-1")[launched] == "InService"

    # ... and every group lets it in
    assert mesh.run_until_converged().converged
    address = f"{mesh.members('us-east-1')[launched]}/32"
    assert all(address in mesh.managed_cidrs(region) for region in mesh.regions)


def test_given_a_scale_in_then_the_instance_is_excluded_and_terminated_only_after_continue(
    mesh: Mesh,
) -> None:
    # GIVEN a converged mesh
    converge(mesh)
    addresses = mesh.members("us-west-2")

    # WHEN us-west-2 scales in
    (leaving,) = mesh.scale("us-west-2", 1)
    (action,) = mesh.hooks.pending.values()

    # THEN it waits in Terminating:Wait, still running, and is no longer a member
    assert mesh.product_lifecycle_states("us-west-2")[leaving] == "Terminating:Wait"
    assert mesh.instance_state("us-west-2", leaving) == "running"
    assert leaving not in mesh.members("us-west-2")

    # WHEN EventBridge delivers the terminate event to the producer, through the buffer (noting the
    # instance's EC2 state whenever the producer publishes)
    states_at_publish: list[str] = []

    def note_state(**_: Any) -> None:
        states_at_publish.append(mesh.instance_state("us-west-2", leaving))

    mesh.factory.sns("us-west-2").meta.events.register("before-call.sns.Publish", note_state)
    mesh.deliver_lifecycle_events("us-west-2", 1)

    # THEN it published the group without the instance while the instance still ran ...
    (snapshot,) = mesh.queued_snapshots("us-east-1")
    assert snapshot["cause"]["kind"] == "terminating"
    assert leaving not in {member["instance_id"] for member in snapshot["members"]}
    assert len(snapshot["members"]) == 1
    assert states_at_publish == ["running"]
    # ... and only its CONTINUE let Auto Scaling terminate the instance
    assert mesh.hooks.completions == [action.completion("CONTINUE", by_timeout=False)]
    assert mesh.instance_state("us-west-2", leaving) in GONE
    assert leaving not in mesh.product_lifecycle_states("us-west-2")

    # ... and its address leaves every group
    assert mesh.run_until_converged().converged
    assert all(f"{addresses[leaving]}/32" not in mesh.managed_cidrs(region) for region in mesh.regions)


def test_given_a_used_or_unknown_token_then_completion_is_refused_and_the_producer_carries_on(
    mesh: Mesh, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a launch whose action the producer completed
    assert len(mesh.scale("us-east-1", 3)) == 1
    (action,) = mesh.hooks.pending.values()
    mesh.deliver_lifecycle_events("us-east-1", 1)
    assert mesh.hooks.completions == [action.completion("CONTINUE", by_timeout=False)]

    # WHEN the event arrives again (EventBridge delivers at least once), and one with an unknown token
    caplog.set_level(logging.INFO, logger="sgmesh-producer")
    caplog.clear()
    mesh.bus.put("us-east-1", action.event())
    mesh.bus.put("us-east-1", action.event(token="00000000-0000-4000-8000-000000000000"))
    mesh.deliver_lifecycle_events("us-east-1", 2)

    # THEN both completions were refused, logged, and no record of either batch failed
    refused = [r for r in caplog.records if r.getMessage() == "lifecycle action was no longer pending"]
    assert len(refused) == 2
    assert mesh.bus.failed == []
    assert [i.result for i in mesh.handled("us-east-1", "lifecycle")] == [{"batchItemFailures": []}] * 2
    assert mesh.buffers["us-east-1"].mapping.depth() == 0
    assert [c.params["LifecycleActionToken"] for c in mesh.completion_calls()] == [
        action.token,
        action.token,
        "00000000-0000-4000-8000-000000000000",
    ]
    assert len(mesh.hooks.completions) == 1


def test_given_a_pending_action_then_only_its_own_group_and_hook_can_complete_it(mesh: Mesh) -> None:
    # GIVEN an instance waiting at the launch hook
    (launched,) = mesh.scale("us-east-1", 3)
    (action,) = mesh.hooks.pending.values()
    autoscaling = mesh.factory.autoscaling("us-east-1")
    request = {
        "AutoScalingGroupName": action.group_name,
        "LifecycleHookName": action.hook_name,
        "LifecycleActionToken": action.token,
        "InstanceId": launched,
        "LifecycleActionResult": "CONTINUE",
    }

    # WHEN the token is sent with another hook or group, an unknown token is sent, or the call comes
    # from another region, THEN AWS refuses
    for wrong in (
        {"LifecycleHookName": "sgmesh-demo-terminating"},
        {"AutoScalingGroupName": "someone-elses-group"},
        {"InstanceId": "i-0123456789abcdef0"},
        {"LifecycleActionResult": "CONTNUE"},
        {"LifecycleActionToken": "00000000-0000-4000-8000-000000000000"},
    ):
        with pytest.raises(ClientError) as refused:
            autoscaling.complete_lifecycle_action(**{**request, **wrong})
        assert refused.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError) as refused:
        mesh.factory.autoscaling("us-west-2").complete_lifecycle_action(**request)
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert mesh.hooks.pending == {action.token: action}

    # WHEN it is sent right, THEN the action completes, once
    autoscaling.complete_lifecycle_action(**request)
    assert mesh.hooks.completions == [action.completion("CONTINUE", by_timeout=False)]
    with pytest.raises(ClientError) as refused:
        autoscaling.complete_lifecycle_action(**request)
    assert refused.value.response["Error"]["Code"] == "ValidationError"


@pytest.mark.parametrize("default_result", ["CONTINUE", "ABANDON"])
def test_given_the_producer_cannot_complete_then_the_heartbeat_timeout_applies_the_default_result(
    aws: str, provisioned: Provisioner, default_result: str
) -> None:
    # GIVEN a converged mesh whose hooks default to `default_result`, and us-east-1's topic gone
    mesh = provisioned(Mesh(aws, TWO_REGIONS, StackSpec(default_result=default_result)))
    converge(mesh)
    boto3.client("sns", region_name="us-east-1").delete_topic(TopicArn=mesh.stacks["us-east-1"].topic_arn)

    # WHEN us-east-1 scales out and every attempt of the producer fails until the heartbeat's deadline:
    # the buffered event comes back after each visibility timeout
    started = mesh.clock.now
    (launched,) = mesh.scale("us-east-1", 3)
    (action,) = mesh.hooks.pending.values()
    mesh.deliver_lifecycle_events("us-east-1", 1)
    mapping = mesh.buffers["us-east-1"].mapping
    while (due := mapping.next_release) is not None and due < action.deadline:
        mesh.clock.advance_to(due)
        mapping.release_due()
        mesh.clock.advance_to(mapping.next_poll)
        assert mapping.poll() == 1

    # THEN the producer never completed the action: it is still pending, its event still buffered
    attempts = mesh.handled("us-east-1", "lifecycle")
    assert [len(attempt.result["batchItemFailures"]) for attempt in attempts] == [1, 1]
    assert mapping.depth() == 1
    assert mesh.completion_calls() == []
    assert mesh.hooks.pending == {action.token: action}
    assert mesh.product_lifecycle_states("us-east-1")[launched] == "Pending:Wait"

    # WHEN the heartbeat times out
    assert action.deadline == started + StackSpec().heartbeat_timeout_seconds
    mesh.clock.advance_to(action.deadline - 1)
    assert mesh.hooks.expire_due() == 0
    mesh.clock.advance_to(action.deadline)
    assert mesh.hooks.expire_due() == 1

    # THEN Auto Scaling applied the hook's default result
    assert mesh.hooks.completions == [action.completion(default_result, by_timeout=True)]
    if default_result == "ABANDON":
        assert mesh.instance_state("us-east-1", launched) in GONE
        assert launched not in mesh.product_lifecycle_states("us-east-1")
        # ... and the group, keeping its desired capacity, launched a replacement that waits at the hook
        (replacement,) = [a for a in mesh.hooks.pending.values() if a.launching]
        assert replacement.instance_id != launched
        assert mesh.product_lifecycle_states("us-east-1")[replacement.instance_id] == "Pending:Wait"
    else:
        assert mesh.product_lifecycle_states("us-east-1")[launched] == "InService"
        assert launched in mesh.members("us-east-1")

    # WHEN the topic is back: the buffered event's next attempt publishes the group (its completion is
    # refused, the action being over), as does the replacement's launch (ABANDON)
    restore_topic(mesh, "us-east-1")
    fired = mesh.schedule.fired
    convergence = mesh.run_until_converged()

    # THEN every group is right: the abandoned instance is nowhere, the continued one everywhere
    assert convergence.converged
    if default_result == "CONTINUE":
        assert mesh.schedule.fired == fired, "the buffered event's retry published the continued instance"
    assert (
        launched in mesh.members("us-east-1")
        if default_result == "CONTINUE"
        else launched not in mesh.members("us-east-1")
    )
    assert len(mesh.members("us-east-1")) == 3
    for region in mesh.regions:
        assert mesh.managed_permissions(region) == mesh.expected_permissions()
