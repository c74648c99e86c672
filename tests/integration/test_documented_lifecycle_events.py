"""AWS's documented lifecycle events through the real lifecycle handler, as EventBridge delivers them
and as the lifecycle buffer hands them over (in AWS's real SQS record shape): each event is pointed
at an instance held at sgmesh's hook, and must publish what it says and complete that action."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from sgmesh.local.stack import ACCOUNT
from sgmesh.local.warm_pool import BACK_TO_POOL, INTO_POOL, OUT_OF_POOL, WarmPool
from tests.support.golden import golden
from tests.support.mesh import Mesh

REGION = "us-east-1"


@dataclass(frozen=True)
class Documented:
    name: str
    # What it must do to the published membership: "joins", "leaves", or "unchanged".
    membership: str
    # The warm-pool transition it reports, if the warm pool (not the group's hooks) holds the instance.
    pool_transition: tuple[bool, str, str] | None = None


DOCUMENTED = [
    Documented("aws/doc_eventref_launch", "joins"),
    Documented("aws/doc_eventref_terminate", "leaves"),
    Documented("aws/lambdago_autoscaling_terminate_no_metadata", "leaves"),
    Documented("aws/doc_live_eventref_launch_with_origin_destination", "joins"),
    Documented("aws/doc_warmpool_ex1_launch_ec2_to_warmpool", "unchanged", INTO_POOL),
    Documented("aws/doc_warmpool_ex2_launch_warmpool_to_asg", "joins", OUT_OF_POOL),
    Documented("aws/doc_warmpool_ex3_launch_ec2_to_asg", "joins"),
    Documented("aws/doc_warmpool_ex4_terminate_asg_to_warmpool", "leaves", BACK_TO_POOL),
]


@pytest.fixture(scope="module")
def mesh(moto_endpoint: str) -> Iterator[Mesh]:
    """One region, shared by this module's tests (each acts on a fresh instance of its own)."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    mesh = Mesh(moto_endpoint, (REGION,)).provision(instances_per_region=1)
    mesh.trueup(REGION)
    mesh.settle()
    yield mesh
    mesh.close()


@pytest.fixture(scope="module")
def pool(mesh: Mesh) -> WarmPool:
    pool = WarmPool()
    pool.register(mesh.factory.autoscaling(REGION))
    return pool


def add_instance(mesh: Mesh) -> str:
    """One more instance in the group, launched by moto straight into service (no hook holds it)."""
    group = mesh.stacks[REGION].group_name
    before = set(mesh.members(REGION))
    mesh.autoscaling(REGION).set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=len(before) + 1)
    (added,) = set(mesh.members(REGION)) - before
    return added


def hold(mesh: Mesh, pool: WarmPool, documented: Documented, launching: bool) -> tuple[str, str, str]:
    """Hold a fresh instance at sgmesh's hook for this event's transition; its (instance, hook, token)."""
    stack = mesh.stacks[REGION]
    hook = mesh.spec.launch_hook if launching else mesh.spec.terminate_hook
    if documented.pool_transition is not None:
        instance = add_instance(mesh)
        if documented.membership == "leaves":
            mesh.trueup(REGION)  # a member first, published as one
        pool.states[instance] = "Pending:Wait" if documented.membership == "joins" else "Warmed:Pending:Wait"
        event = pool.action_event(
            region=REGION,
            group=stack.group_name,
            hook=hook,
            instance_id=instance,
            transition=documented.pool_transition,
        )
        return instance, hook, event["detail"]["LifecycleActionToken"]
    if launching:
        (instance,) = mesh.scale(REGION, len(mesh.members(REGION)) + 1)
    else:
        instance = add_instance(mesh)
        mesh.trueup(REGION)
        mesh.hooks.terminate(stack, [instance])
    action = next(a for a in mesh.hooks.pending.values() if a.instance_id == instance)
    return instance, hook, action.token


def pointed_at(name: str, *, group: str, instance: str, hook: str, token: str) -> dict[str, Any]:
    """The documented event, its identities replaced; every other key (and every absent one) as AWS's."""
    event = golden(name)
    event.update(account=ACCOUNT, region=REGION)
    event["detail"].update(
        AutoScalingGroupName=group, EC2InstanceId=instance, LifecycleHookName=hook, LifecycleActionToken=token
    )
    return event


def buffered(mesh: Mesh, event: dict[str, Any]) -> dict[str, Any]:
    """The event as the buffer's event source mapping hands it over: the body of a record shaped
    like the one AWS really delivered (aws/powertools_snsSqsEvent.json)."""
    (record,) = golden("aws/powertools_snsSqsEvent")["Records"]
    body = json.dumps(event)
    return {
        "Records": [
            record
            | {
                "body": body,
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSourceARN": mesh.buffers[REGION].queue.arn,
                "awsRegion": REGION,
            }
        ]
    }


@pytest.mark.parametrize("delivery", ["eventbridge", "sqs buffer"])
@pytest.mark.parametrize("documented", DOCUMENTED, ids=[d.name.removeprefix("aws/") for d in DOCUMENTED])
def test_a_documented_lifecycle_event_publishes_what_it_says_and_completes_its_action(
    mesh: Mesh, pool: WarmPool, documented: Documented, delivery: str
) -> None:
    # GIVEN an instance held at sgmesh's hook, and AWS's documented event pointed at it
    launching = golden(documented.name)["detail"]["LifecycleTransition"].endswith("LAUNCHING")
    instance, hook, token = hold(mesh, pool, documented, launching)
    group = mesh.stacks[REGION].group_name
    event = pointed_at(documented.name, group=group, instance=instance, hook=hook, token=token)

    # WHEN it reaches the lifecycle handler directly, or through the buffer
    result = mesh.lifecycle(REGION, event if delivery == "eventbridge" else buffered(mesh, event))
    calls = mesh.invocations[-1].calls
    mesh.settle()

    # THEN the record (if buffered) succeeded, the membership published is what the event says...
    if delivery == "sqs buffer":
        assert result == {"batchItemFailures": []}
    published = [json.loads(call.params["Message"]) for call in calls if call.operation == "Publish"]
    if documented.membership == "unchanged":
        assert published == []
    else:
        (snapshot,) = published
        members = {member["instance_id"] for member in snapshot["members"]}
        assert (instance in members) is (documented.membership == "joins")
    # ... and the action it names is continued, in its own region
    completions = [call for call in calls if call.operation == "CompleteLifecycleAction"]
    assert [(call.region, call.params) for call in completions] == [
        (
            REGION,
            {
                "AutoScalingGroupName": group,
                "LifecycleHookName": hook,
                "LifecycleActionToken": token,
                "InstanceId": instance,
                "LifecycleActionResult": "CONTINUE",
            },
        )
    ]
    assert token not in mesh.hooks.pending
    assert token not in pool.pending
