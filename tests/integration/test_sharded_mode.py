"""`sharded` target: 400 members on 3 ports spread over 21 groups per region, a change or a move touches
one member only (authorized in its new group before it leaves the old), and a mesh that does not fit
fails before touching any group."""

from __future__ import annotations

from collections import Counter, defaultdict

import boto3
import pytest

from consumers.bootstrap import build
from consumers.sharding import score
from schemas.settings import Settings
from sgmesh.local.clients import ApiCall
from sgmesh.local.stack import StackSpec
from tests.support.logs import extra
from tests.support.mesh import Mesh, Provisioner

PORTS = "tcp:7000-7001,tcp:9042,udp:7002"
SIZES = {"us-east-1": 134, "us-west-2": 133, "eu-west-1": 133}
# 400 members x 3 ports = 1,200 rules at moto's (and AWS's default) 60 per group: 20 groups, plus one
# for the room the operator's rule takes in the stack's own group.
EXTRA_GROUPS = 20
QUOTA = 60


def shard(mesh: Mesh, extra_groups: int) -> None:
    """Give every region `extra_groups` more managed groups beside the stack's own, in sharded mode."""
    for region, stack in mesh.stacks.items():
        ec2 = mesh.ec2(region)
        extra = [
            ec2.create_security_group(GroupName=f"{mesh.spec.name}-shard-{n}", Description="sgmesh shard")[
                "GroupId"
            ]
            for n in range(1, extra_groups + 1)
        ]
        stack.environment["SGMESH_SECURITY_GROUP_IDS"] = ",".join([stack.security_group_id, *extra])
        stack.environment["SGMESH_TARGET"] = "sharded"


def group_ids(mesh: Mesh, region: str) -> list[str]:
    return mesh.stacks[region].environment["SGMESH_SECURITY_GROUP_IDS"].split(",")


def managed_by_group(mesh: Mesh, region: str) -> dict[str, set[tuple[str, int, int, str]]]:
    """group id -> the managed permissions it holds (read straight from EC2, in one filtered call)."""
    marker = f"sgmesh:{mesh.spec.cluster}"
    held: dict[str, set[tuple[str, int, int, str]]] = {
        group_id: set() for group_id in group_ids(mesh, region)
    }
    pages = (
        mesh.ec2(region)
        .get_paginator("describe_security_group_rules")
        .paginate(Filters=[{"Name": "group-id", "Values": list(held)}])
    )
    for page in pages:
        for rule in page["SecurityGroupRules"]:
            if not rule["IsEgress"] and rule.get("Description", "").split(" ")[0] == marker:
                held[rule["GroupId"]].add(
                    (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIpv4"])
                )
    return held


def homes(held: dict[str, set[tuple[str, int, int, str]]]) -> dict[str, set[str]]:
    """address -> the groups holding any of its rules."""
    found: dict[str, set[str]] = defaultdict(set)
    for group_id, permissions in held.items():
        for *_ports, cidr in permissions:
            found[cidr].add(group_id)
    return found


def assert_sharded(mesh: Mesh) -> dict[str, dict[str, str]]:
    """Every region holds exactly the truth, each address whole in one group; returns region -> homes."""
    expected = mesh.expected_permissions()
    placed: dict[str, dict[str, str]] = {}
    for region in mesh.regions:
        held = managed_by_group(mesh, region)
        assert set().union(*held.values()) == expected, f"{region} has not converged"
        assert sum(len(permissions) for permissions in held.values()) == len(expected), "a rule is twice"
        assert all(len(permissions) <= QUOTA for permissions in held.values())
        where = homes(held)
        assert all(len(groups) == 1 for groups in where.values()), "an address is split over groups"
        assert mesh.has_operator_rule(region)
        placed[region] = {cidr: next(iter(groups)) for cidr, groups in where.items()}
    return placed


def consumer_ec2_writes(mesh: Mesh, since: int) -> dict[str, list[ApiCall]]:
    writes: dict[str, list[ApiCall]] = defaultdict(list)
    for invocation in mesh.invocations[since:]:
        for call in invocation.calls if invocation.handler == "apply" else ():
            if call.service == "ec2" and call.mutating:
                writes[invocation.region].append(call)
    return dict(writes)


def resize(mesh: Mesh, region: str, size: int) -> None:
    """Set the group's size directly in moto (setup, not a lifecycle event)."""
    boto3.client("autoscaling", region_name=region).update_auto_scaling_group(
        AutoScalingGroupName=mesh.stacks[region].group_name, MaxSize=max(size, 200), DesiredCapacity=size
    )


def test_400_members_on_3_ports_converge_sharded_and_a_change_moves_no_other_member(
    aws: str,
    provisioned: Provisioner,
) -> None:
    # GIVEN three regions of 134 + 133 + 133 members, 3 ports, 21 managed groups per region at quota 60
    mesh = provisioned(Mesh(aws, spec=StackSpec(ports=PORTS, rule_quota=QUOTA)), 0)
    shard(mesh, EXTRA_GROUPS)
    for region, size in SIZES.items():
        resize(mesh, region, size)
    assert sum(len(mesh.members(region)) for region in mesh.regions) == 400

    # WHEN every region trues up and every consumer applies
    first = len(mesh.invocations)
    mesh.trueup_everywhere()
    mesh.settle()

    # THEN every region holds the 1,200 rules, each address whole in one group, no group over 60,
    # with one Authorize per group that gained rules and no Revoke
    placed = assert_sharded(mesh)
    writes = consumer_ec2_writes(mesh, first)
    for region in mesh.regions:
        operations = [call.operation for call in writes[region]]
        assert set(operations) == {"AuthorizeSecurityGroupIngress"}, region
        assert len(operations) == len(set(placed[region].values())) <= EXTRA_GROUPS + 1

    # WHEN the converged mesh is planned (what `sgmesh plan` shows)
    for region in mesh.regions:
        reviews = build(Settings.from_env(mesh.stacks[region].environment), mesh.factory).plan().groups
        # THEN every one of its 21 groups plans nothing, within the quota
        assert len(reviews) == EXTRA_GROUPS + 1
        assert all(review.plan.is_empty and not review.over_quota for review in reviews), region

    # WHEN us-east-1 loses a member and trues up
    members = set(mesh.members("us-east-1").values())
    resize(mesh, "us-east-1", SIZES["us-east-1"] - 1)
    (leaving,) = members - set(mesh.members("us-east-1").values())
    scaled_in = len(mesh.invocations)
    mesh.trueup("us-east-1")
    mesh.settle()

    # THEN each region makes one write, revoking the leaver's 3 rules from the group that held them;
    # every other member stays where it was
    after = assert_sharded(mesh)
    for region in mesh.regions:
        (revoke,) = consumer_ec2_writes(mesh, scaled_in)[region]
        assert revoke.operation == "RevokeSecurityGroupIngress"
        assert revoke.params["GroupId"] == placed[region][f"{leaving}/32"]
        assert len(revoke.params["SecurityGroupRuleIds"]) == 3
        assert after[region] == {c: g for c, g in placed[region].items() if c != f"{leaving}/32"}

    # WHEN us-west-2 gains a member
    resize(mesh, "us-west-2", SIZES["us-west-2"] + 1)
    scaled_out = len(mesh.invocations)
    mesh.trueup("us-west-2")
    mesh.settle()

    # THEN each region authorizes its 3 rules in one group with room, and moves nobody
    grown = assert_sharded(mesh)
    for region in mesh.regions:
        (authorize,) = consumer_ec2_writes(mesh, scaled_out)[region]
        assert authorize.operation == "AuthorizeSecurityGroupIngress"
        (joined,) = grown[region].keys() - after[region].keys()
        assert authorize.params["GroupId"] == grown[region][joined]
        assert {c: g for c, g in grown[region].items() if c != joined} == after[region]


def test_a_sharded_mesh_that_does_not_fit_places_what_fits_and_fails_for_the_rest(
    aws: str, provisioned: Provisioner, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN 6 members x 3 ports (18 rules) over two groups of quota 9, one of them with the operator's
    # rule: room for 2 + 3 whole addresses, not 6
    mesh = provisioned(Mesh(aws, spec=StackSpec(ports=PORTS, rule_quota=9)))
    shard(mesh, 1)
    for region in mesh.regions:
        mesh.trueup(region)
    messages = mesh.drain("eu-west-1")
    caplog.clear()

    # WHEN the consumer applies them
    response = mesh.deliver("eu-west-1", messages)

    # THEN every record fails (to be retried), 5 whole addresses are placed within each group's
    # quota, the operator's rule stays, and the error names both groups and the one that waits
    assert len(response["batchItemFailures"]) == len(messages) == 3
    by_group = managed_by_group(mesh, "eu-west-1")
    placed = [cidr for permissions in by_group.values() for *_ports, cidr in permissions]
    assert len(set(placed)) == 5
    assert sorted(Counter(placed).values()) == [3] * 5
    assert all(len(permissions) <= 9 for permissions in by_group.values())
    assert mesh.has_operator_rule("eu-west-1")
    (error,) = [
        extra(r, "error") for r in caplog.records if r.getMessage().startswith("applying the batch failed")
    ]
    groups = ", ".join(group_ids(mesh, "eu-west-1"))
    assert error.startswith(
        f"sharded security groups {groups} would need 18 ipv4 inbound rules (each address with all its "
        "rules in one group) and have room for 17 (a quota of 9 per group, less the rules sgmesh does not "
        "manage): 1 address(es) fit in no group and wait, first "
    )
    assert error.endswith("/32 (removals went ahead)")


def test_a_group_pushed_over_its_room_moves_one_member_authorizing_before_revoking(
    aws: str,
    provisioned: Provisioner,
) -> None:
    # GIVEN 6 members x 3 ports converged over two groups of quota 30
    mesh = provisioned(Mesh(aws, spec=StackSpec(ports=PORTS, rule_quota=30)))
    shard(mesh, 1)
    mesh.trueup_everywhere()
    mesh.settle()
    placed = assert_sharded(mesh)["eu-west-1"]
    groups, held = group_ids(mesh, "eu-west-1"), Counter(placed.values())
    fuller = max(groups, key=lambda group_id: held[group_id])
    (other,) = [group_id for group_id in groups if group_id != fuller]

    # WHEN an operator adds rules to eu-west-1's fuller group (k addresses) until its room is 3k - 1
    ec2 = mesh.ec2("eu-west-1")
    unmanaged = sum(
        1
        for rule in ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [fuller]}])[
            "SecurityGroupRules"
        ]
        if not rule["IsEgress"] and not rule.get("Description", "").startswith("sgmesh:")
    )
    ec2.authorize_security_group_ingress(
        GroupId=fuller,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [
                    {"CidrIp": f"198.51.100.{n}/32", "Description": "operator"}
                    for n in range(1, 32 - 3 * held[fuller] - unmanaged)
                ],
            }
        ],
    )
    changed = len(mesh.invocations)
    mesh.trueup("us-east-1")
    mesh.settle()

    # THEN eu-west-1 moves exactly the address that hashes lowest for that group: authorized in the
    # other group first, then revoked from the fuller one; everyone else stays, other regions write nothing
    moved = min(
        (cidr for cidr, group in placed.items() if group == fuller), key=lambda cidr: score(fuller, cidr)
    )
    writes = consumer_ec2_writes(mesh, changed)
    assert set(writes) == {"eu-west-1"}
    authorize, revoke = writes["eu-west-1"]
    assert (authorize.operation, authorize.params["GroupId"]) == ("AuthorizeSecurityGroupIngress", other)
    assert {r["CidrIp"] for p in authorize.params["IpPermissions"] for r in p["IpRanges"]} == {moved}
    assert (revoke.operation, revoke.params["GroupId"]) == ("RevokeSecurityGroupIngress", fuller)
    assert len(revoke.params["SecurityGroupRuleIds"]) == 3
    assert assert_sharded(mesh)["eu-west-1"] == {**placed, moved: other}
