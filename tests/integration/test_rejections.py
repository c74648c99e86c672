"""Bad input is rejected record by record and never reaches a table or a group; over the rule quota,
whole members go in lowest address first and the rest wait; a failed publish raises and never
completes (let alone abandons) a launch."""

from __future__ import annotations

import json
import uuid
from ipaddress import IPv4Network
from typing import Any

import pytest

from sgmesh.local.lifecycle import Completion
from sgmesh.local.stack import StackSpec
from tests.support.ec2 import reference_a_prefix_list
from tests.support.logs import extra
from tests.support.mesh import SNAPSHOT_ATTRIBUTES, Mesh, Provisioner


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


def published(mesh: Mesh, region: str, snapshot: dict[str, Any]) -> None:
    """What a holder of sns:Publish on the region's topic could send: signed by SNS, but forged."""
    mesh.sns(region).publish(
        TopicArn=mesh.stacks[region].topic_arn,
        Message=json.dumps(snapshot),
        MessageAttributes=SNAPSHOT_ATTRIBUTES,
    )


def with_member_address(snapshot: dict[str, Any], cidr: str) -> dict[str, Any]:
    return {
        **snapshot,
        "event_id": str(uuid.uuid4()),
        "members": [{**snapshot["members"][0], "public_ipv4": cidr}],
    }


def stored_sources(mesh: Mesh, region: str) -> set[str]:
    items = mesh.dynamodb(region).scan(TableName=mesh.stacks[region].table_name)["Items"]
    return {item["sk"]["S"] for item in items if item["pk"]["S"].startswith("state#")}


def source_region(message: dict[str, Any]) -> str:
    region: str = json.loads(json.loads(message["Body"])["Message"])["source"]["region"]
    return region


def test_bad_records_fail_alone_and_leave_no_trace(mesh: Mesh, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a real delivery from us-east-1, and us-west-2's snapshot to forge from
    mesh.trueup("us-east-1")
    mesh.trueup("us-west-2")
    delivered = {source_region(m): m for m in mesh.drain("eu-west-1")}
    good, template = delivered["us-east-1"], delivered["us-west-2"]
    snapshot = json.loads(json.loads(template["Body"])["Message"])
    # ... forgeries SNS signs because they were published to a peer's own topic
    forged = {
        "wrong cluster": {**snapshot, "cluster": "someone-else"},
        "the world": with_member_address(snapshot, "0.0.0.0/0"),
        "a /24": with_member_address(snapshot, "54.1.2.0/24"),
        "private in public mode": with_member_address(snapshot, "10.0.0.5/32"),
        "another region's source": {**snapshot, "source": {**snapshot["source"], "region": "us-east-1"}},
    }
    for document in forged.values():
        published(mesh, "us-west-2", document)
    arrived = mesh.drain("eu-west-1")
    by_forgery = dict(zip(forged, sorted(arrived, key=lambda m: forged_order(m, forged)), strict=True))
    # ... and messages changed on the way, which no SNS key signed
    bad = {
        **by_forgery,
        "not JSON": tampered(template, body="{not json"),
        "unknown topic": tampered(
            template, envelope={"TopicArn": "arn:aws:sns:us-west-2:123456789012:intruder"}
        ),
        "tampered in flight": with_extra_member(template),
        "unsigned": tampered(template, envelope={"Signature": "", "SignatureVersion": "2"}),
        "SHA1 signature": tampered(template, envelope={"SignatureVersion": "1"}),
        "certificate elsewhere": tampered(
            template, envelope={"SigningCertURL": "https://sns.us-west-2.amazonaws.com.evil.example/key.pem"}
        ),
    }

    # WHEN they arrive in one batch with the good record
    caplog.clear()
    response = mesh.deliver("eu-west-1", [good, *bad.values()])

    # THEN exactly the bad ones are reported, each with a clear log line and its reason
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        m["MessageId"] for m in bad.values()
    )
    rejected = {
        extra(r, "message_id"): (extra(r, "reason"), extra(r, "error"))
        for r in caplog.records
        if r.getMessage() == "record rejected"
    }
    assert set(rejected) == {m["MessageId"] for m in bad.values()}
    expected = {
        "wrong cluster": ("wrong-cluster", "someone-else"),
        "the world": ("invalid-snapshot", "0.0.0.0/0"),
        "a /24": ("invalid-snapshot", "54.1.2.0/24"),
        "private in public mode": ("invalid-snapshot", "not a public address"),
        "another region's source": ("wrong-source", "us-east-1"),
        "not JSON": ("not-json", "not JSON"),
        "unknown topic": ("unknown-topic", "intruder"),
        "tampered in flight": ("bad-signature", "does not match"),
        "unsigned": ("bad-signature", "Signature"),
        "SHA1 signature": ("bad-signature", "SignatureVersion '1'"),
        "certificate elsewhere": ("untrusted-certificate-url", "evil.example"),
    }
    for name, (reason, detail) in expected.items():
        logged_reason, logged_error = rejected[bad[name]["MessageId"]]
        assert (logged_reason, detail in logged_error) == (reason, True), (name, logged_error)

    # ... the good record applied, and nothing bad reached the table or the group
    east = {f"{ip}/32" for ip in mesh.members("us-east-1").values()}
    assert {cidr for *_ports, cidr in mesh.managed_permissions("eu-west-1")} == east
    assert stored_sources(mesh, "eu-west-1") == {
        f"123456789012/us-east-1/{mesh.stacks['us-east-1'].group_name}"
    }
    cidrs = {rule.get("CidrIpv4") for rule in mesh.ingress("eu-west-1")}
    assert cidrs.isdisjoint({"0.0.0.0/0", "54.1.2.0/24", "10.0.0.5/32", "54.9.9.9/32"})


def forged_order(message: dict[str, Any], forged: dict[str, dict[str, Any]]) -> int:
    """The position in `forged` of the document a delivery carries (SQS keeps no order)."""
    document = json.loads(json.loads(message["Body"])["Message"])
    return list(forged.values()).index(document)


def with_extra_member(message: dict[str, Any]) -> dict[str, Any]:
    """A delivery whose snapshot gained a member after SNS signed it."""
    snapshot = json.loads(json.loads(message["Body"])["Message"])
    extra = {"instance_id": "i-0000000000000beef", "public_ipv4": "54.9.9.9/32"}
    return tampered(message, members=[*snapshot["members"], extra])


def admitted_on(mesh: Mesh, region: str) -> dict[str, int]:
    """Each address the region's group admits through sgmesh's rules, with the number of its rules."""
    counts: dict[str, int] = {}
    for _protocol, _low, _high, cidr in mesh.managed_permissions(region):
        counts[cidr] = counts.get(cidr, 0) + 1
    return counts


def test_a_plan_over_the_rule_quota_admits_whole_members_lowest_address_first_and_fails_for_the_rest(
    aws: str, provisioned: Provisioner, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a quota of 10 rules and a mesh that needs 6 members x 2 ports, beside the operator's rule
    mesh = provisioned(Mesh(aws, spec=StackSpec(rule_quota=10)))
    assert mesh.stacks["eu-west-1"].environment["SGMESH_RULE_QUOTA"] == "10"
    for region in mesh.regions:
        mesh.trueup(region)
    messages = mesh.drain("eu-west-1")
    caplog.clear()

    # WHEN the consumer applies them
    response = mesh.deliver("eu-west-1", messages)

    # THEN every record fails (to be retried), the 4 lowest addresses went in whole (1 + 4 x 2 = 9
    # rules; a fifth would make 11), and the error says what the rest would have needed
    assert len(response["batchItemFailures"]) == len(messages) == 3
    addresses = sorted({cidr for *_ports, cidr in mesh.expected_permissions()}, key=IPv4Network)
    assert len(addresses) == 6
    assert admitted_on(mesh, "eu-west-1") == dict.fromkeys(addresses[:4], 2)
    group_id = mesh.stacks["eu-west-1"].security_group_id
    errors = [
        extra(r, "error") for r in caplog.records if r.getMessage().startswith("applying the batch failed")
    ]
    needed = f"security group {group_id} would need 13 ipv4 inbound rules, over its quota of 10"
    assert errors == [f"{needed}; the additions that do not fit wait (removals went ahead)"]


def test_a_failed_publish_fails_the_buffered_event_and_leaves_the_hook_pending(mesh: Mesh) -> None:
    # GIVEN us-east-1 scales out while its topic cannot be published to
    region = "us-east-1"
    stack = mesh.stacks[region]
    before = set(mesh.members(region))
    mesh.autoscaling(region).set_desired_capacity(AutoScalingGroupName=stack.group_name, DesiredCapacity=3)
    (launched,) = set(mesh.members(region)) - before
    mesh.sns(region).delete_topic(TopicArn=stack.topic_arn)

    # WHEN the launch hook fires (EventBridge puts the event on the buffer, which hands it to the producer)
    mesh.lifecycle_action(region, launched, launching=True)

    # THEN the producer reported the event failed, and nothing completed the action (no CONTINUE, and
    # never ABANDON): the event stays on the buffer for a retry after the visibility timeout
    (invocation,) = mesh.handled(region, "lifecycle")
    (record,) = invocation.event["Records"]
    assert invocation.result == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert mesh.hooks.completions == []
    assert mesh.completion_calls() == []
    (action,) = mesh.hooks.pending.values()
    assert action.instance_id == launched
    assert mesh.product_lifecycle_states(region)[launched] == "Pending:Wait"
    buffer = mesh.buffers[region].mapping
    assert buffer.next_release == invocation.at + mesh.spec.buffer_visibility_timeout_seconds

    # WHEN the retry runs with the topic back, the hook is completed with CONTINUE
    mesh.sns(region).create_topic(Name=stack.topic_arn.rsplit(":", 1)[1])
    mesh.sns(region).subscribe(TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=stack.queue_arn)
    mesh.clock.advance_to(buffer.next_release)
    assert buffer.release_due() == 1
    mesh.clock.advance_to(buffer.next_poll)
    assert buffer.poll() == 1
    assert mesh.invocations[-1].result == {"batchItemFailures": []}
    assert mesh.hooks.completions == [
        Completion(
            region, stack.group_name, "sgmesh-demo-launching", launched, action.token, "CONTINUE", False
        )
    ]
    assert [call.params["LifecycleActionResult"] for call in mesh.completion_calls()] == ["CONTINUE"]
    assert buffer.depth() == 0


def test_an_operators_prefix_list_reference_weighs_its_max_entries_against_the_quota(
    mesh: Mesh, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the operator's rule referencing a prefix list of 50 entries on the group (60-rule quota),
    # beside the operator's own SSH rule: AWS counts that reference as 50 rules
    region = "eu-west-1"
    ec2 = mesh.ec2(region)
    group_id = mesh.stacks[region].security_group_id
    reference_a_prefix_list(ec2, group_id, port=443, max_entries=50)
    for source in mesh.regions:
        mesh.trueup(source)
    messages = mesh.drain(region)
    before = mesh.ingress(region)
    caplog.clear()

    # WHEN the consumer applies 6 members x 2 port specs (12 rules; 50 + 1 + 12 = 63 > 60)
    response = mesh.deliver(region, messages)

    # THEN 4 members go in (51 + 8 = 59 rules), and the error counts the reference by its weight
    assert len(response["batchItemFailures"]) == len(messages)
    assert len(mesh.ingress(region)) == len(before) + 8
    assert sorted(admitted_on(mesh, region).values()) == [2] * 4
    errors = [
        extra(r, "error") for r in caplog.records if r.getMessage().startswith("applying the batch failed")
    ]
    needed = f"security group {group_id} would need 63 ipv4 inbound rules, over its quota of 60"
    assert errors == [f"{needed}; the additions that do not fit wait (removals went ahead)"]
