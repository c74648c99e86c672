"""`sgmesh teardown` on three regions: the leaving region's members gone everywhere before anything of
it is deleted, its group left with the operator's rule only, and the doctor reporting the other
regions' stale reference to its topic until they are deployed again."""

from __future__ import annotations

import pytest

from sgmesh.doctor import Doctor
from sgmesh.meshfile import MeshFile
from sgmesh.teardown import Teardown, TeardownIncomplete
from sgmesh.wiring import STALE, Part
from tests.support.mesh import OPERATOR_RULE, Mesh

EUROPE = "eu-west-1"


def converged(mesh: Mesh) -> Mesh:
    for region in mesh.regions:
        mesh.trueup(region)
    mesh.settle()
    mesh.assert_converged()
    return mesh


def without(mesh: MeshFile, region: str) -> MeshFile:
    """The operator's mesh file once the region's section is removed."""
    return mesh.model_copy(update={"regions": {k: v for k, v in mesh.regions.items() if k != region}})


def leaving_cidrs(mesh: Mesh) -> set[str]:
    """Europe's members' addresses, checked distinct from the others' (moto draws them at random)."""
    europe = {cidr for cidrs in mesh.member_addresses(EUROPE).values() for cidr in cidrs}
    others = {
        cidr
        for region in mesh.regions
        if region != EUROPE
        for c in mesh.member_addresses(region).values()
        for cidr in c
    }
    assert europe
    assert not europe & others
    return europe


def test_a_torn_down_regions_members_leave_every_region_and_its_group_keeps_the_operators_rule(
    mesh: Mesh,
) -> None:
    converged(mesh)
    europe = leaving_cidrs(mesh)
    log: list[str] = []
    first = mesh.calls.mark()

    # WHEN eu-west-1 is torn down (each wait for the other regions lets their consumers run)
    Teardown(mesh.mesh_file(None), mesh.factory, log.append, pause=mesh.settle).run(EUROPE)

    # THEN no region admits any of its members, and every other member stays admitted
    remaining = {permission for permission in mesh.expected_permissions() if permission[3] not in europe}
    for region in ("us-east-1", "us-west-2"):
        assert mesh.managed_permissions(region) == remaining
        assert mesh.has_operator_rule(region)
    # ... its own group holds the operator's rule and nothing else
    assert [
        (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule.get("CidrIpv4"))
        for rule in mesh.ingress(EUROPE)
    ] == [OPERATOR_RULE]
    # ... its queue is subscribed to no topic any more
    for region in mesh.regions:
        listed = mesh.sns(region).list_subscriptions_by_topic(TopicArn=mesh.stacks[region].topic_arn)
        assert mesh.stacks[EUROPE].queue_arn not in {s["Endpoint"] for s in listed["Subscriptions"]}
    # ... the retirement went out before any rule of Europe's group was revoked
    calls = [call for call in mesh.calls.since(first) if call.mutating and call.region == EUROPE]
    operations = [call.operation for call in calls]
    assert operations.index("Publish") < operations.index("RevokeSecurityGroupIngress")
    assert any("every other region applied its retirement" in line for line in log)
    # ... and no handler wrote outside its region
    assert mesh.cross_region_writes() == []


def test_a_second_teardown_finishes_nothing_more_and_changes_no_group(mesh: Mesh) -> None:
    converged(mesh)
    leaving_cidrs(mesh)
    teardown = Teardown(mesh.mesh_file(None), mesh.factory, lambda _line: None, pause=mesh.settle)
    teardown.run(EUROPE)
    after = {region: mesh.ingress(region) for region in mesh.regions}
    first = mesh.calls.mark()

    teardown.run(EUROPE)

    assert {region: mesh.ingress(region) for region in mesh.regions} == after
    assert not [call for call in mesh.calls.since(first) if call.service == "ec2" and call.mutating]


def test_a_region_that_has_not_applied_the_retirement_stops_the_teardown_before_any_rule_goes(
    mesh: Mesh,
) -> None:
    converged(mesh)
    # GIVEN us-west-2 cut off: its consumer never sees Europe's retirement
    mesh.cut_off("us-west-2")

    def deliver_where_reachable() -> None:
        for mapping in mesh.mappings.values():
            if not mapping.paused:
                mesh.clock.advance_to(mapping.next_poll)
                mapping.poll()

    # WHEN Europe is torn down, waiting a few rounds
    teardown = Teardown(
        mesh.mesh_file(None), mesh.factory, lambda _line: None, pause=deliver_where_reachable, wait_attempts=3
    )
    with pytest.raises(TeardownIncomplete, match="us-west-2 holds version"):
        teardown.run(EUROPE)

    # THEN Europe's group and the other regions still hold what they held: nothing was revoked
    assert mesh.managed_permissions(EUROPE) == mesh.expected_permissions()
    assert mesh.managed_permissions("us-west-2") == mesh.expected_permissions()


def test_the_doctor_reports_the_torn_down_regions_topic_until_the_others_are_deployed_again(
    mesh: Mesh,
) -> None:
    converged(mesh)
    leaving_cidrs(mesh)
    Teardown(mesh.mesh_file(None), mesh.factory, lambda _line: None, pause=mesh.settle).run(EUROPE)

    # WHEN the doctor checks the mesh file without Europe
    diagnosis = Doctor(without(mesh.mesh_file(None), EUROPE), mesh.factory).diagnose()

    # THEN each remaining region's queue and delivery DLQ still admit Europe's topic: stale, fixed by a deploy
    topic = mesh.stacks[EUROPE].topic_arn
    assert sorted((f.region, f.part, f.subject, f.fix) for f in diagnosis.findings) == sorted(
        (region, part, topic, STALE)
        for region in ("us-east-1", "us-west-2")
        for part in (Part.QUEUE_POLICY, Part.DEAD_LETTER_POLICY)
    )
