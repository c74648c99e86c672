"""`sgmesh adopt` on the three-region mesh: it takes over exactly the hand-made rules that are ones
sgmesh wants for a current member (never a wider CIDR, another port or protocol, or another cluster's
rule), in one call per group, and an adopted rule is revoked when its member leaves."""

from __future__ import annotations

import ipaddress
from typing import Any

from cloud.clients import ClientFactory
from sgmesh.local import rule_descriptions
from sgmesh.operator import Operator
from tests.support.mesh import Mesh

EAST, WEST = "us-east-1", "us-west-2"


def hand_rule(mesh: Mesh, protocol: str, from_port: int, to_port: int, cidr: str, description: str) -> None:
    mesh.ec2(EAST).authorize_security_group_ingress(
        GroupId=mesh.stacks[EAST].security_group_id,
        IpPermissions=[
            {
                "IpProtocol": protocol,
                "FromPort": from_port,
                "ToPort": to_port,
                "IpRanges": [{"CidrIp": cidr, "Description": description}],
            }
        ],
    )


def descriptions(mesh: Mesh) -> dict[tuple[str, int, int, str], str]:
    """EAST's inbound rules from an address: (protocol, from, to, cidr) -> description."""
    return {
        (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIpv4"]): rule.get("Description", "")
        for rule in mesh.ingress(EAST)
        if rule.get("CidrIpv4")
    }


def assert_converged_beside(mesh: Mesh, foreign: tuple[str, int, int, str]) -> None:
    """Every region admits every member by sgmesh's rules, but for us-east-1's one permission another
    cluster's rule already grants (it counts as present, as an operator's rule does)."""
    expected = mesh.expected_permissions()
    for region in mesh.regions:
        managed = mesh.managed_permissions(region) | ({foreign} if region == EAST else set())
        assert managed == expected | ({foreign} if region == EAST else set()), region
        assert mesh.has_operator_rule(region), region


def adopted_rules(adoptions: list[Any]) -> set[str]:
    return {str(rule.permission) for group in adoptions for rule in group.rules}


def test_adopt_takes_over_exactly_the_matching_hand_made_rules_and_a_leavers_is_then_revoked(
    mesh: Mesh,
) -> None:
    # GIVEN a running cluster that kept its rules by hand, with sgmesh deployed in observe mode: every
    # table knows every member, and no group holds a managed rule
    mesh.set_environment(SGMESH_OBSERVE="true")
    mesh.trueup_everywhere()
    mesh.settle()
    members = mesh.members(WEST)
    assert len(set(members.values())) == len(members), "moto drew one address twice"
    leaver, stayer = sorted(members)
    address, other = members[leaver], members[stayer]
    # ... and in us-east-1's group, hand-made rules: exact ones for a member, and near misses
    hand_rule(mesh, "tcp", 7000, 7001, f"{address}/32", "cassandra node (by hand)")
    hand_rule(mesh, "tcp", 9042, 9042, f"{address}/32", "")
    wider = str(ipaddress.ip_network(f"{other}/24", strict=False))
    hand_rule(mesh, "tcp", 7000, 7001, wider, "the whole subnet")
    hand_rule(mesh, "tcp", 8080, 8080, f"{other}/32", "another port")
    hand_rule(mesh, "udp", 7000, 7001, f"{other}/32", "another protocol")
    hand_rule(mesh, "tcp", 9042, 9042, f"{other}/32", "sgmesh:analytics us-west-2/other/i-0123456789abcdef0")
    before = descriptions(mesh)
    operator = Operator(mesh.mesh_file(None), ClientFactory(mesh.session))

    # WHEN the operator runs the dry run
    dry = operator.adopt(EAST)
    # THEN it shows the two exact rules, and changed nothing
    assert adopted_rules(dry) == {f"tcp:7000-7001 from {address}/32", f"tcp:9042-9042 from {address}/32"}
    assert not any(group.applied for group in dry)
    assert descriptions(mesh) == before

    # WHEN the operator applies it
    sent = len(rule_descriptions.REQUESTS)
    (group,) = operator.adopt(EAST, apply=True)
    # THEN one call for the group named exactly those two rules, each with its member's managed description
    (request,) = rule_descriptions.REQUESTS[sent:]
    assert request[:2] == (EAST, mesh.stacks[EAST].security_group_id)
    assert request[2] == {rule.rule_id: rule.after for rule in group.rules}
    after = descriptions(mesh)
    source = f"{mesh.spec.name}-{WEST}"
    for ports in ((7000, 7001), (9042, 9042)):
        assert after["tcp", *ports, f"{address}/32"] == f"sgmesh:demo 123456789012/{WEST}/{source}/{leaver}"
    # ... and no other rule changed: the wider CIDR, the other port and protocol, the other cluster's
    unchanged = {key: text for key, text in before.items() if key[3] != f"{address}/32"}
    assert {key: after[key] for key in unchanged} == unchanged
    # ... a second run finds nothing left to adopt
    assert adopted_rules(operator.adopt(EAST)) == set()

    # WHEN sgmesh enforces (observe off) and the next true-up runs
    mesh.set_environment(SGMESH_OBSERVE="false")
    mesh.trueup_everywhere()
    mesh.settle()
    # THEN every region converged, and the near misses are still there, untouched
    foreign = ("tcp", 9042, 9042, f"{other}/32")
    assert_converged_beside(mesh, foreign)
    assert {key: descriptions(mesh)[key] for key in unchanged} == unchanged

    # WHEN the member whose rules were adopted leaves
    mesh.lifecycle_action(WEST, leaver, launching=False)
    mesh.settle()
    # THEN its adopted rules are revoked like any other, everywhere, and the rest is as it was
    assert_converged_beside(mesh, foreign)
    assert not any(key[3] == f"{address}/32" for key in descriptions(mesh))
    assert {key: descriptions(mesh)[key] for key in unchanged} == unchanged
    assert mesh.cross_region_writes() == []
