"""The mesh through its own life, on three regions: a group retired while its instances run, a
region's table recreated, an instance of a VPC numbered outside RFC 1918, and the largest snapshot
through a real SNS-to-SQS delivery."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloud.sns import Topic
from schemas.events import PACKED_MEMBERS, parse_snapshot
from sgmesh.local.stack import StackSpec
from tests.fakes import largest_snapshot
from tests.support.mesh import Mesh, Provisioner

EAST, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"
EXTRA = "cassandra-analytics"


def settle_everywhere(mesh: Mesh) -> None:
    mesh.settle()
    mesh.assert_converged()
    assert mesh.cross_region_writes() == []


def described_instances(mesh: Mesh, region: str) -> set[str]:
    """The instances every region's managed rules name (a rule's description ends with its instance)."""
    marker = f"sgmesh:{mesh.spec.cluster}"
    return {
        rule["Description"].rsplit("/", 1)[1]
        for rule in mesh.ingress(region)
        if rule.get("Description", "").split(" ")[0] == marker
    }


def published(mesh: Mesh, region: str) -> list[dict[str, Any]]:
    """Every snapshot the region's functions published, in order, as documents."""
    return [
        parse_snapshot(call.params["Message"]).model_dump(mode="json")
        for invocation in mesh.invocations
        if invocation.region == region
        for call in invocation.calls
        if call.operation == "Publish"
    ]


def test_a_group_dropped_from_a_regions_settings_is_retired_everywhere_by_its_next_true_up(
    mesh: Mesh,
) -> None:
    # GIVEN a converged mesh where us-east-1 also names a second group, admitted everywhere
    for region in mesh.regions:
        mesh.trueup(region)
    extra = mesh.add_group(EAST, EXTRA, instances=2)
    mesh.trueup(EAST)
    settle_everywhere(mesh)
    assert all(set(extra) <= described_instances(mesh, region) for region in mesh.regions)

    # WHEN the stack is deployed without it (its instances keep running) and the region's true-up runs
    mesh.drop_group(EAST, EXTRA)
    mesh.trueup(EAST)
    retiring = mesh.handled(EAST, "trueup")[-1]
    settle_everywhere(mesh)

    # THEN every region stopped admitting its members, and kept every other member and the operator's rule
    assert {mesh.instance_state(EAST, instance) for instance in extra} == {"running"}
    for region in mesh.regions:
        assert described_instances(mesh, region).isdisjoint(extra), region
    # ... because us-east-1 published its final snapshot: empty, cause retired, above its last version
    of_extra = [s for s in published(mesh, EAST) if s["source"]["group"] == EXTRA]
    assert [(s["cause"]["kind"], len(s["members"])) for s in of_extra] == [("trueup", 2), ("retired", 0)]
    assert of_extra[0]["version"] < of_extra[1]["version"]
    # ... at the cost of a claim, a publish and its record: no describe, no other ledger read
    assert [call.operation for call in retiring.calls] == [
        "Query",
        "DescribeAutoScalingGroups",
        "DescribeInstances",
        *("UpdateItem", "Publish", "UpdateItem") * 2,
    ]


def test_a_retired_group_named_again_is_admitted_again(mesh: Mesh) -> None:
    extra = mesh.add_group(EAST, EXTRA, instances=1)
    for region in mesh.regions:
        mesh.trueup(region)
    mesh.drop_group(EAST, EXTRA)
    mesh.trueup(EAST)
    settle_everywhere(mesh)

    # WHEN it is named again
    mesh.stacks[EAST].environment["SGMESH_ASG_NAMES"] += f",{EXTRA}"
    mesh.trueup(EAST)
    settle_everywhere(mesh)

    # THEN its next snapshot is above its retirement, so every region admits it again
    assert all(set(extra) <= described_instances(mesh, region) for region in mesh.regions)


def test_after_a_region_recreates_its_table_its_next_changes_are_applied_everywhere(mesh: Mesh) -> None:
    # GIVEN a converged mesh in which us-east-1 has published a few versions
    for region in mesh.regions:
        mesh.trueup(region)
    mesh.scale(EAST, 3)
    mesh.deliver_lifecycle_events(EAST, 1)
    settle_everywhere(mesh)
    applied_before = {region: mesh.stored_version(region, EAST) for region in (WEST, EU)}

    # WHEN its table is recreated, then a member leaves us-east-1
    mesh.delete_table(EAST)
    mesh.create_table(EAST)
    (leaving,) = mesh.scale(EAST, 2)
    mesh.deliver_lifecycle_events(EAST, 1)
    mesh.settle()

    # THEN the other regions applied the change (none dropped it as stale): the leaver is gone there
    for region in (WEST, EU):
        assert (mesh.stored_version(region, EAST) or 0) > (applied_before[region] or 0), region
        assert leaving not in described_instances(mesh, region), region
    # AND once every source has published again (us-east-1's consumer table is new as well), all agree
    for region in (WEST, EU):
        mesh.trueup(region)
    settle_everywhere(mesh)


@pytest.mark.parametrize("address", ["public", "private"])
def test_an_instance_of_a_vpc_numbered_in_11_0_0_0_16_is_a_member_beside_the_usual_ones(
    aws: str, provisioned: Provisioner, address: str
) -> None:
    # GIVEN us-east-1's group launching its next instance into a VPC numbered 11.0.0.0/16, which AWS
    # allows (no RFC 1918 range), beside the usual ones
    mesh = provisioned(Mesh(aws, spec=StackSpec(address=address)))
    for region in mesh.regions:
        mesh.trueup(region)
    settle_everywhere(mesh)
    ec2, stack = mesh.ec2(EAST), mesh.stacks[EAST]
    vpc = ec2.create_vpc(CidrBlock="11.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="11.0.3.0/24")["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    mesh.autoscaling(EAST).update_auto_scaling_group(
        AutoScalingGroupName=stack.group_name, VPCZoneIdentifier=subnet
    )

    # WHEN it scales out (its launch hook fires) and every region applies what us-east-1 publishes
    (odd,) = mesh.scale(EAST, 3)
    mesh.deliver_lifecycle_events(EAST, 1)
    settle_everywhere(mesh)

    # THEN it is a member everywhere, by the address the mode uses, and the hook was continued
    (reservation,) = ec2.describe_instances(InstanceIds=[odd])["Reservations"]
    private = reservation["Instances"][0]["PrivateIpAddress"]
    assert private.startswith("11.0.3.")
    for region in mesh.regions:
        assert odd in described_instances(mesh, region), region
    (snapshot,) = [s for s in published(mesh, EAST) if s["cause"].get("instance_id") == odd]
    (member,) = [m for m in snapshot["members"] if m["instance_id"] == odd]
    assert member["private_ipv4"] == f"{private}/32"
    assert [c.instance_id for c in mesh.hooks.completions if c.result == "CONTINUE"] == [odd]


def test_the_largest_snapshot_travels_through_sns_and_sqs_within_their_limits(mesh: Mesh) -> None:
    # GIVEN the documented maximum: 1,000 members, every field, 4 IPv6 addresses each
    snapshot = largest_snapshot()

    # WHEN the producer's SNS adapter publishes it to us-east-1's topic and eu-west-1's queue gets it
    message_id = Topic(mesh.sns(EAST), mesh.stacks[EAST].topic_arn).publish(snapshot)
    (delivered,) = [m for m in mesh.drain(EU) if json.loads(m["Body"])["MessageId"] == message_id]

    # THEN the envelope SQS holds is within the queue's default 262,144 bytes, and reads back whole
    assert len(delivered["Body"].encode()) < 262_144
    message = json.loads(delivered["Body"])["Message"]
    assert PACKED_MEMBERS in json.loads(message)
    assert parse_snapshot(message) == snapshot
