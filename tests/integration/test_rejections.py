"""Bad input is rejected record by record and never reaches a table or a group; plans over the rule
quota change nothing; a failed publish raises and never completes (let alone abandons) a launch."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sgmesh.local.lifecycle import Completion
from sgmesh.local.stack import StackSpec
from tests.support.mesh import Mesh, Provisioner


def tampered(message: dict[str, Any], *, body: str | None = None, **changes: Any) -> dict[str, Any]:
    """A copy of a real delivery whose envelope or snapshot was changed."""
    envelope = json.loads(message["Body"])
    snapshot = json.loads(envelope["Message"])
    envelope.update(changes.pop("envelope", {}))
    for key, value in changes.items():
        snapshot[key] = value
    envelope["Message"] = json.dumps(snapshot)
    return {
        **message,
        "MessageId": str(uuid.uuid4()),
        "Body": body if body is not None else json.dumps(envelope),
    }


def with_member_address(message: dict[str, Any], cidr: str) -> dict[str, Any]:
    snapshot = json.loads(json.loads(message["Body"])["Message"])
    members = [{**snapshot["members"][0], "public_ipv4": cidr}]
    return tampered(message, members=members)


def stored_sources(mesh: Mesh, region: str) -> set[str]:
    items = mesh.dynamodb(region).scan(TableName=mesh.stacks[region].table_name)["Items"]
    return {item["sk"]["S"] for item in items if item["pk"]["S"].startswith("state#")}


def test_bad_records_fail_alone_and_leave_no_trace(mesh: Mesh, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a real delivery from us-east-1 and one from us-west-2 to tamper with
    mesh.trueup("us-east-1")
    mesh.trueup("us-west-2")
    delivered = {
        json.loads(json.loads(m["Body"])["Message"])["source"]["region"]: m for m in mesh.drain("eu-west-1")
    }
    good, template = delivered["us-east-1"], delivered["us-west-2"]
    bad = {
        "not JSON": tampered(template, body="{not json"),
        "unknown topic": tampered(
            template,
            envelope={"TopicArn": "arn:aws:sns:us-west-2:123456789012:intruder"},
        ),
        "wrong cluster": tampered(template, cluster="someone-else"),
        "the world": with_member_address(template, "0.0.0.0/0"),
        "a /24": with_member_address(template, "54.1.2.0/24"),
        "private in public mode": with_member_address(template, "10.0.0.5/32"),
    }

    # WHEN they arrive in one batch with the good record
    caplog.clear()
    response = mesh.deliver("eu-west-1", [good, *bad.values()])

    # THEN exactly the bad ones are reported, each with a clear log line
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        m["MessageId"] for m in bad.values()
    )
    rejected = {
        r.message_id: (r.reason, r.error) for r in caplog.records if r.getMessage() == "record rejected"
    }
    assert set(rejected) == {m["MessageId"] for m in bad.values()}
    expected = {
        "not JSON": ("not-json", "not JSON"),
        "unknown topic": ("unknown-topic", "intruder"),
        "wrong cluster": ("wrong-cluster", "someone-else"),
        "the world": ("invalid-snapshot", "0.0.0.0/0"),
        "a /24": ("invalid-snapshot", "54.1.2.0/24"),
        "private in public mode": ("invalid-snapshot", "not a public address"),
    }
    for name, (reason, detail) in expected.items():
        logged_reason, logged_error = rejected[bad[name]["MessageId"]]
        assert (logged_reason, detail in logged_error) == (reason, True), name

    # ... the good record applied, and nothing bad reached the table or the group
    east = {f"{ip}/32" for ip in mesh.members("us-east-1").values()}
    assert {cidr for *_ports, cidr in mesh.managed_permissions("eu-west-1")} == east
    assert stored_sources(mesh, "eu-west-1") == {
        f"123456789012/us-east-1/{mesh.stacks['us-east-1'].group_name}"
    }
    cidrs = {rule.get("CidrIpv4") for rule in mesh.ingress("eu-west-1")}
    assert cidrs.isdisjoint({"0.0.0.0/0", "54.1.2.0/24", "10.0.0.5/32"})


def test_a_plan_over_the_rule_quota_changes_nothing(
    provisioned: Provisioner, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a quota of 10 rules and a mesh that needs 6 members x 2 ports, beside the operator's rule
    mesh = provisioned(Mesh(spec=StackSpec(rule_quota=10)))
    assert mesh.stacks["eu-west-1"].environment["SGMESH_RULE_QUOTA"] == "10"
    for region in mesh.regions:
        mesh.trueup(region)
    messages = mesh.drain("eu-west-1")
    before = mesh.ingress("eu-west-1")
    caplog.clear()

    # WHEN the consumer applies them
    response = mesh.deliver("eu-west-1", messages)

    # THEN every record fails (to be retried), the group is untouched, and the error says why
    assert len(response["batchItemFailures"]) == len(messages) == 3
    assert mesh.ingress("eu-west-1") == before
    ec2_writes = [c for c in mesh.invocations[-1].calls if c.service == "ec2" and c.mutating]
    assert ec2_writes == []
    group_id = mesh.stacks["eu-west-1"].security_group_id
    errors = [r.error for r in caplog.records if r.getMessage().startswith("applying the batch failed")]
    needed = f"security group {group_id} would need 13 ipv4 inbound rules, over its quota of 10"
    assert errors == [f"{needed}; nothing was changed"]


def test_a_failed_publish_raises_and_leaves_the_hook_pending(mesh: Mesh) -> None:
    # GIVEN us-east-1 scales out while its topic cannot be published to
    region = "us-east-1"
    stack = mesh.stacks[region]
    before = set(mesh.members(region))
    mesh.autoscaling(region).set_desired_capacity(AutoScalingGroupName=stack.group_name, DesiredCapacity=3)
    (launched,) = set(mesh.members(region)) - before
    mesh.sns(region).delete_topic(TopicArn=stack.topic_arn)

    # WHEN the launch hook fires
    with pytest.raises(ClientError):
        mesh.lifecycle_action(region, launched, launching=True)

    # THEN nothing completed the action (no CONTINUE, and never ABANDON): the invocation will be retried
    assert mesh.hooks.completions == []
    assert mesh.completion_calls() == []
    (action,) = mesh.hooks.pending.values()
    assert action.instance_id == launched
    assert mesh.product_lifecycle_states(region)[launched] == "Pending:Wait"
    assert mesh.bus.next_due == mesh.clock.now + 60, "Lambda retries the asynchronous invocation"

    # WHEN the retry runs with the topic back, the hook is completed with CONTINUE
    mesh.sns(region).create_topic(Name=stack.topic_arn.rsplit(":", 1)[1])
    mesh.sns(region).subscribe(TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=stack.queue_arn)
    mesh.clock.advance_to(mesh.bus.next_due)
    assert mesh.bus.dispatch_due() == 1
    assert mesh.invocations[-1].error is None
    assert mesh.hooks.completions == [
        Completion(
            region, stack.group_name, "sgmesh-demo-launching", launched, action.token, "CONTINUE", False
        )
    ]
    assert [call.params["LifecycleActionResult"] for call in mesh.completion_calls()] == ["CONTINUE"]
    assert mesh.bus.failed == []
