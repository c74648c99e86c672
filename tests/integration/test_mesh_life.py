"""The mesh's own life on three regions: a region removed and re-added, a table recreated, a region
growing past the quota while another shrinks, and a switch of target on a full group. Through each,
every member stays admitted (or waits, counted, where the quota allows no more), every leaver goes,
and no function writes outside its region."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from ipaddress import IPv4Network
from typing import Any

from schemas.events import ACKNOWLEDGEMENT_TYPE
from sgmesh.local.clients import ApiCall
from sgmesh.local.stack import StackSpec
from tests.support.mesh import Mesh, Provisioner

EAST, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"
# The stack's default ports: 2 port specs, so 2 rules per member (or 2 references per list).
SPECS = 2


def start(mesh: Mesh) -> None:
    mesh.trueup_everywhere()
    assert mesh.run_until_converged().converged


def admitted(mesh: Mesh, region: str) -> dict[str, int]:
    """Each address the region's group admits through sgmesh's per-address rules, with its rule count."""
    return dict(Counter(cidr for *_ports, cidr in mesh.managed_permissions(region)))


def addresses_of(mesh: Mesh, *regions: str) -> set[str]:
    return {f"{ip}/32" for region in regions for ip in mesh.members(region).values()}


def applies_since(mesh: Mesh, region: str, first: int) -> list[Any]:
    """The consumer's invocations since `first` that applied snapshots (not acknowledgements alone)."""
    return [
        invocation
        for invocation in mesh.handled(region, "apply")[first:]
        if invocation.message_types() - {ACKNOWLEDGEMENT_TYPE}
    ]


def published_by_consumers(mesh: Mesh, since: int = 0) -> list[tuple[str, str]]:
    """(region of the consumer, topic region) of every Publish a consumer made, acknowledgements aside."""
    return [
        (invocation.region, call.params["TopicArn"].split(":")[3])
        for invocation in mesh.invocations[since:]
        if invocation.handler == "apply"
        for call in invocation.calls
        if call.operation == "Publish"
        and call.params["MessageAttributes"]["type"]["StringValue"] != ACKNOWLEDGEMENT_TYPE
    ]


def state_sources(mesh: Mesh, region: str) -> set[str]:
    items = mesh.dynamodb(region).query(
        TableName=mesh.stacks[region].table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"state#{mesh.spec.cluster}"}},
    )["Items"]
    return {item["sk"]["S"].split("/")[1] for item in items}


# --- a region removed, then re-added with a fresh table --------------------------------------------


def test_a_removed_region_is_revoked_everywhere_at_the_next_reconcile_and_re_added_catches_up_at_once(
    mesh: Mesh,
) -> None:
    # GIVEN three regions converged
    start(mesh)
    eu_members = addresses_of(mesh, EU)

    # WHEN eu-west-1 is removed (the others stop accepting its topic; its stack is deleted, its
    # instances keep running) and the next snapshot anywhere starts a reconcile
    mesh.remove_region(EU)
    before = {region: len(mesh.handled(region, "apply")) for region in mesh.regions}
    mesh.trueup(EAST)
    mesh.settle()

    # THEN that first reconcile revoked eu-west-1's members in both remaining regions, and forgot its state
    for region in (EAST, WEST):
        (reconcile,) = applies_since(mesh, region, before[region])
        assert any(call.operation == "RevokeSecurityGroupIngress" for call in reconcile.calls)
        assert not eu_members & set(admitted(mesh, region)), region
        assert EU not in state_sources(mesh, region)
    mesh.assert_converged()

    # WHEN the west scales out meanwhile, and eu-west-1 is deployed again: a new, empty table, and its
    # group's old rules still in place (its stack never owned them)
    mesh.scale(WEST, 3)
    assert mesh.run_until_converged().converged
    mesh.readd_region(EU)
    since = len(mesh.invocations)
    mesh.trueup(EU)
    outcome = mesh.run_until_converged()

    # THEN it converges within seconds, not a true-up period: its empty table asked for a resync on its
    # own topic, and the others answered on theirs; everyone admits everyone again
    assert outcome.converged
    assert outcome.sim_seconds < mesh.spec.trueup_interval_seconds
    assert (EU, EU) in published_by_consumers(mesh, since)
    assert {(EAST, EAST), (WEST, WEST)} <= set(published_by_consumers(mesh, since))
    mesh.assert_converged()
    assert mesh.cross_region_writes() == []


# --- a consumer's table recreated --------------------------------------------------------------------


def test_a_recreated_table_keeps_every_member_admitted_and_catches_up_through_a_resync_request(
    mesh: Mesh,
) -> None:
    # GIVEN three regions converged, then us-west-2's table deleted and created again, empty
    start(mesh)
    mesh.recreate_table(WEST)
    everyone = addresses_of(mesh, EAST, WEST, EU)

    # WHEN us-east-1 loses a member, and us-west-2's consumer gets only that snapshot first
    east = mesh.members(EAST)
    (leaver,) = mesh.scale(EAST, 1)
    leaver_address = f"{east[leaver]}/32"
    mesh.deliver_lifecycle_events(EAST, 1)
    messages = [m for m in mesh.drain(WEST) if "membership-snapshot" in m["Body"]]
    since = len(mesh.invocations)
    mesh.deliver(WEST, messages)

    # THEN us-west-2 revokes the leaver, keeps eu-west-1's and its own members (it has no snapshot of
    # them, so nothing says they left), and asks the mesh for a resync on its own topic
    west = set(admitted(mesh, WEST))
    remaining = addresses_of(mesh, EAST, WEST, EU)
    assert remaining <= west
    assert west - remaining <= {leaver_address}
    assert everyone - {leaver_address} == remaining
    assert published_by_consumers(mesh, since) == [(WEST, WEST)]

    # WHEN the mesh runs: the request reaches every consumer, which answers with its own sources
    outcome = mesh.run_until_converged()

    # THEN us-west-2 has eu-west-1's and us-east-1's states again, within seconds, every region converged
    assert outcome.converged
    assert outcome.sim_seconds < mesh.spec.trueup_interval_seconds
    assert {EAST, EU} <= state_sources(mesh, WEST)
    assert mesh.cross_region_writes() == []


# --- a region grows past the quota while another loses a member --------------------------------------


def group_sizes(mesh: Mesh, calls: Iterable[ApiCall], start_sizes: dict[str, int]) -> dict[str, list[int]]:
    """Each group's inbound rules after each of the product's writes, from the writes themselves."""
    sizes = {group: [size] for group, size in start_sizes.items()}
    for call in calls:
        group = call.params.get("GroupId")
        if group not in sizes:
            continue
        if call.operation == "AuthorizeSecurityGroupIngress":
            added = sum(
                len(p.get("IpRanges", [])) + len(p.get("Ipv6Ranges", []))
                for p in call.params["IpPermissions"]
            )
            sizes[group].append(sizes[group][-1] + added)
        elif call.operation == "RevokeSecurityGroupIngress":
            sizes[group].append(sizes[group][-1] - len(call.params["SecurityGroupRuleIds"]))
    return sizes


def test_a_region_growing_past_the_quota_still_loses_its_leavers_and_no_group_passes_its_quota(
    aws: str, provisioned: Provisioner
) -> None:
    # GIVEN a quota of 13 rules: the operator's rule and 6 members x 2 port specs fill every group
    mesh = provisioned(Mesh(aws, spec=StackSpec(rule_quota=13)))
    start(mesh)
    sizes = {mesh.stacks[r].security_group_id: len(mesh.ingress(r)) for r in mesh.regions}
    assert set(sizes.values()) == {13}
    before = addresses_of(mesh, EAST, WEST, EU)
    first = mesh.calls.mark()

    # WHEN us-east-1 grows to 4 members (8 in all: 17 rules) while us-west-2 loses one (7: 15 rules)
    mesh.scale(EAST, 4)
    mesh.scale(WEST, 1)
    mesh.run_for(2 * mesh.spec.visibility_timeout_seconds)

    # THEN every region revoked the leaver, kept the 5 members that stay, and took the newcomer with
    # the lower address, whole; the other waits (the records are retried), and no group ever held more
    # than 13 rules
    members = addresses_of(mesh, EAST, WEST, EU)
    stayed, joined = members & before, sorted(members - before, key=IPv4Network)
    assert (len(stayed), len(joined)) == (5, 2)
    for region in mesh.regions:
        assert admitted(mesh, region) == dict.fromkeys(stayed | {joined[0]}, SPECS), region
        assert mesh.has_operator_rule(region)
    for group, steps in group_sizes(mesh, mesh.calls.since(first), sizes).items():
        assert max(steps) <= 13, (group, steps)
    failed = [
        i
        for r in mesh.regions
        for i in mesh.handled(r, "apply")
        if i.result and i.result["batchItemFailures"]
    ]
    assert failed, "the records whose members wait are retried"
    assert mesh.cross_region_writes() == []


# --- a switch from security-group to prefix-list on a full group -------------------------------------


def prefix_lists(mesh: Mesh, max_entries: int) -> dict[str, str]:
    """One IPv4 list per region, as the template creates it for the prefix-list target."""
    return {
        region: mesh.ec2(region).create_managed_prefix_list(
            PrefixListName=f"{mesh.spec.name}-ipv4", AddressFamily="IPv4", MaxEntries=max_entries
        )["PrefixList"]["PrefixListId"]
        for region in mesh.regions
    }


def listed(mesh: Mesh, region: str, prefix_list_id: str) -> set[str]:
    entries = mesh.ec2(region).get_managed_prefix_list_entries(PrefixListId=prefix_list_id)["Entries"]
    return {entry["Cidr"] for entry in entries}


def references(mesh: Mesh, region: str) -> set[str]:
    return {rule["PrefixListId"] for rule in mesh.ingress(region) if "PrefixListId" in rule}


def test_a_full_group_switches_to_prefix_lists_and_back_each_within_one_reconcile(
    aws: str, provisioned: Provisioner
) -> None:
    # GIVEN a quota of 13: the operator's rule and 6 members x 2 port specs fill every group; lists of
    # 6 entries, whose 2 references weigh 12: the group cannot hold both shapes at once
    mesh = provisioned(Mesh(aws, spec=StackSpec(rule_quota=13)))
    start(mesh)
    lists = prefix_lists(mesh, max_entries=6)
    everyone = addresses_of(mesh, EAST, WEST, EU)

    # WHEN a deploy switches every region to the prefix-list target, and a true-up starts a reconcile
    for region, prefix_list_id in lists.items():
        mesh.stacks[region].environment.update(
            SGMESH_TARGET="prefix-list", SGMESH_PREFIX_LIST_IDS=prefix_list_id
        )
    since = {region: len(mesh.handled(region, "apply")) for region in mesh.regions}
    mesh.trueup(EAST)
    mesh.settle()

    # THEN in one reconcile each list is filled, the per-address rules go right before the references
    # come in (a gap within that reconcile only), and every member is admitted through its list
    for region, prefix_list_id in lists.items():
        switch = applies_since(mesh, region, since[region])[0]
        writes = [c.operation for c in switch.calls if c.service == "ec2" and c.mutating]
        assert writes == [
            "ModifyManagedPrefixList",
            "RevokeSecurityGroupIngress",
            "AuthorizeSecurityGroupIngress",
        ], region
        assert listed(mesh, region, prefix_list_id) == everyone
        assert references(mesh, region) == {prefix_list_id}
        assert admitted(mesh, region) == {}
        assert mesh.has_operator_rule(region)

    # WHEN switched back to the security-group target
    mesh.set_environment(SGMESH_TARGET="security-group", SGMESH_PREFIX_LIST_IDS="")
    since = {region: len(mesh.handled(region, "apply")) for region in mesh.regions}
    mesh.trueup(EAST)
    mesh.settle()

    # THEN in one reconcile the references go right before the per-address rules come in
    for region in mesh.regions:
        switch = applies_since(mesh, region, since[region])[0]
        writes = [c.operation for c in switch.calls if c.service == "ec2" and c.mutating]
        assert writes == ["RevokeSecurityGroupIngress", "AuthorizeSecurityGroupIngress"], region
        assert references(mesh, region) == set()
    mesh.assert_converged()
    assert mesh.cross_region_writes() == []
