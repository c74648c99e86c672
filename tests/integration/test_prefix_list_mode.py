"""The prefix-list target on the local mesh: lists converge, grow, lose version races and still keep
every member, and a growth no group can hold is refused before anything is written."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import pytest
from botocore.exceptions import ClientError
from moto.backends import get_backend

from cloud.ec2 import Ec2
from schemas.events import Cause, CauseKind, Member, MembershipSnapshot, Source
from sgmesh.local.clients import ApiCall
from sgmesh.local.prefix_lists import PrefixListChecks
from sgmesh.local.stack import ACCOUNT
from tests.support.mesh import SNAPSHOT_ATTRIBUTES, Mesh

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import AddPrefixListEntryTypeDef

# The stack's default ports: 3 ports (7000, 7001, 9042) in 2 port specs, so 2 referencing rules.
PORT_SPECS = (("tcp", 7000, 7001), ("tcp", 9042, 9042))


@pytest.fixture
def checks(mesh: Mesh) -> PrefixListChecks:
    """AWS's CurrentVersion and MaxEntries checks, which the local mesh puts on the product's clients."""
    return mesh.prefix_lists


class RaisedRuleQuota:
    """The account's applied rules-per-group quota raised (moto's Service Quotas answers the default, 60),
    as an operator raises it before running a large cluster."""

    def __init__(self, value: int) -> None:
        self.value = value

    def register(self, client: Any) -> None:
        if client.meta.service_model.service_id.hyphenize() == "service-quotas":
            client.meta.events.register("after-call.service-quotas.GetServiceQuota", self.raised)

    def raised(self, parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("Quota", {})["Value"] = float(self.value)


def use_prefix_lists(mesh: Mesh, *, max_entries: int, **settings: str) -> dict[str, str]:
    """One IPv4 list per region, as the template creates it, and the consumers set to use it."""
    lists = {}
    for region, stack in mesh.stacks.items():
        lists[region] = mesh.ec2(region).create_managed_prefix_list(
            PrefixListName=f"{mesh.spec.name}-ipv4", AddressFamily="IPv4", MaxEntries=max_entries
        )["PrefixList"]["PrefixListId"]
        stack.environment.update(
            {"SGMESH_TARGET": "prefix-list", "SGMESH_PREFIX_LIST_IDS": lists[region], **settings}
        )
    return lists


def members(region_index: int, count: int, first: int = 0) -> list[Member]:
    return [
        Member(
            instance_id=f"i-{region_index:02x}{n:015x}",
            public_ipv4=f"54.{region_index + 1}.{n // 250}.{n % 250 + 1}/32",
        )
        for n in range(first, first + count)
    ]


def publish(mesh: Mesh, region: str, version: int, group_members: list[Member]) -> None:
    """A producer's snapshot of the region's group, on the region's topic (so to every queue)."""
    stack = mesh.stacks[region]
    snapshot = MembershipSnapshot(
        event_id=uuid4(),
        cluster=mesh.spec.cluster,
        source=Source(account=ACCOUNT, region=region, group=stack.group_name),
        version=version,
        produced_at=datetime.now(UTC),
        cause=Cause(kind=CauseKind.TRUEUP),
        members=tuple(group_members),
    )
    mesh.sns(region).publish(
        TopicArn=stack.topic_arn, Message=snapshot.model_dump_json(), MessageAttributes=SNAPSHOT_ATTRIBUTES
    )


def entries(mesh: Mesh, region: str, prefix_list_id: str) -> set[str]:
    found = mesh.ec2(region).get_managed_prefix_list_entries(PrefixListId=prefix_list_id)["Entries"]
    return {entry["Cidr"] for entry in found}


def max_entries(mesh: Mesh, region: str, prefix_list_id: str) -> int:
    (described,) = mesh.ec2(region).describe_managed_prefix_lists(PrefixListIds=[prefix_list_id])[
        "PrefixLists"
    ]
    count: int = described["MaxEntries"]
    return count


def references(mesh: Mesh, region: str) -> set[tuple[str, int, int, str, str]]:
    """The group's reference rules as the product reads them (descriptions kept by the emulation)."""
    group_id = mesh.stacks[region].security_group_id
    rules = Ec2(mesh.factory.ec2(region)).ingress_rules(group_id)
    return {
        (ref.protocol, ref.from_port, ref.to_port, ref.prefix_list_id, rule.description)
        for rule in rules
        if (ref := rule.reference) is not None
    }


def assert_prefix_lists_converged(mesh: Mesh, lists: dict[str, str], expected: set[str]) -> None:
    marker = f"sgmesh:{mesh.spec.cluster} prefix-list ipv4"
    for region, prefix_list_id in lists.items():
        assert entries(mesh, region, prefix_list_id) == expected, f"{region}'s list has not converged"
        assert references(mesh, region) == {(*ports, prefix_list_id, marker) for ports in PORT_SPECS}
        assert mesh.managed_permissions(region) == set(), f"{region} has per-address rules"
        assert mesh.has_operator_rule(region), f"{region} lost the operator's rule"


def consumer_calls(mesh: Mesh, region: str, since: int = 0) -> Counter[str]:
    calls: list[ApiCall] = [
        call for invocation in mesh.handled(region, "apply")[since:] for call in invocation.calls
    ]
    return Counter(call.operation for call in calls)


def entry_history(region: str, prefix_list_id: str) -> dict[int, set[str]]:
    """Every version the list has had (moto keeps them all): what a member could have lost in between."""
    prefix_list: Any = get_backend("ec2")[ACCOUNT][region].managed_prefix_lists[prefix_list_id]
    return {version: {entry["Cidr"] for entry in found} for version, found in prefix_list.entries.items()}


# --- scale -----------------------------------------------------------------------------------------


def test_a_3_region_cluster_of_400_members_on_3_ports_converges_in_prefix_list_mode(
    mesh: Mesh, checks: PrefixListChecks
) -> None:
    # GIVEN lists of 5 entries, a rule quota of 1,000, and 134 + 133 + 133 members
    mesh.factory.extend(RaisedRuleQuota(1000))
    lists = use_prefix_lists(mesh, max_entries=5, SGMESH_RULE_QUOTA="1000")
    cluster = {
        region: members(index, 134 if index == 0 else 133) for index, region in enumerate(mesh.regions)
    }
    for region, group_members in cluster.items():
        publish(mesh, region, 1, group_members)

    # WHEN every region's consumer gets the three snapshots
    mesh.settle()

    # THEN every list holds exactly the 400 addresses, two references admit them on the 3 ports
    expected = {member.public_ipv4 for group in cluster.values() for member in group if member.public_ipv4}
    assert len(expected) == 400
    assert_prefix_lists_converged(mesh, lists, expected)
    assert checks.rejected == []
    for region, prefix_list_id in lists.items():
        # ... each list grew once, with 10% headroom: 2 references x 440 = 880 weighted rules <= 1,000
        assert max_entries(mesh, region, prefix_list_id) == 440
        initial, *resync = mesh.handled(region, "apply")
        calls = Counter(call.operation for call in initial.calls)
        # ... in a bounded number of calls: one resize, 4 batches of 100, one Authorize, three reads
        assert calls["ModifyManagedPrefixList"] == 1 + math.ceil(400 / 100)
        assert calls["AuthorizeSecurityGroupIngress"] == 1
        assert calls["RevokeSecurityGroupIngress"] == 0
        assert calls["DescribeManagedPrefixLists"] == 1
        assert calls["GetManagedPrefixListEntries"] == 1
        assert calls["DescribeSecurityGroupRules"] == 1
        # ... and the resync its empty table asked for, answered with snapshots it had, wrote nothing
        assert [c for i in resync for c in i.calls if c.service == "ec2" and c.mutating] == []
    assert mesh.cross_region_writes() == []

    # WHEN one region loses 50 members and gains 30 (a new snapshot version)
    before = {region: len(mesh.handled(region, "apply")) for region in mesh.regions}
    first = mesh.regions[0]
    cluster[first] = members(0, 84) + members(0, 30, first=1000)
    publish(mesh, first, 2, cluster[first])
    mesh.settle()

    # THEN every list follows in one call (50 removals and 30 additions fit one), without a resize
    expected = {member.public_ipv4 for group in cluster.values() for member in group if member.public_ipv4}
    assert len(expected) == 380
    assert_prefix_lists_converged(mesh, lists, expected)
    for region, prefix_list_id in lists.items():
        calls = consumer_calls(mesh, region, since=before[region])
        assert calls["ModifyManagedPrefixList"] == 1
        assert calls["AuthorizeSecurityGroupIngress"] == calls["RevokeSecurityGroupIngress"] == 0
        assert max_entries(mesh, region, prefix_list_id) == 440


def test_400_members_on_3_port_specs_fill_what_the_groups_can_hold_and_the_rest_wait(
    mesh: Mesh, checks: PrefixListChecks
) -> None:
    # GIVEN 3 port specs: 3 references weigh 3 x 400 = 1,200 rules, over the largest quota AWS grants
    mesh.factory.extend(RaisedRuleQuota(1000))
    lists = use_prefix_lists(
        mesh, max_entries=5, SGMESH_RULE_QUOTA="1000", SGMESH_PORTS="tcp:7000,tcp:7001,tcp:9042"
    )
    region = mesh.regions[0]
    cluster = members(0, 400)
    publish(mesh, region, 1, cluster)
    messages = mesh.drain(region)

    # WHEN the consumer gets the snapshot
    response = mesh.deliver(region, messages)

    # THEN the list grows to the 333 entries 3 references can weigh in 1,000 rules, the lowest 333
    # addresses go in and are admitted, and the record fails (to be retried) for the 67 that wait
    assert [failure["itemIdentifier"] for failure in response["batchItemFailures"]] == [
        message["MessageId"] for message in messages
    ]
    addresses = sorted((m.public_ipv4 for m in cluster if m.public_ipv4), key=lambda cidr: IPv4Network(cidr))
    assert max_entries(mesh, region, lists[region]) == 333
    assert entries(mesh, region, lists[region]) == set(addresses[:333])
    assert len(references(mesh, region)) == 3
    assert not checks.rejected


# --- MaxEntries growth ------------------------------------------------------------------------------


def test_a_list_too_small_grows_in_its_own_call_before_the_entries_are_added(
    mesh: Mesh, checks: PrefixListChecks
) -> None:
    lists = use_prefix_lists(mesh, max_entries=2)
    cluster = {region: members(index, 3) for index, region in enumerate(mesh.regions)}
    for region, group_members in cluster.items():
        publish(mesh, region, 1, group_members)

    mesh.settle()

    expected = {member.public_ipv4 for group in cluster.values() for member in group if member.public_ipv4}
    assert_prefix_lists_converged(mesh, lists, expected)
    for region, prefix_list_id in lists.items():
        modifies = [
            call.params
            for invocation in mesh.handled(region, "apply")
            for call in invocation.calls
            if call.operation == "ModifyManagedPrefixList"
        ]
        # THEN the resize (9 needed + 10 headroom) went alone, at the version read; the entries after it
        resize, added = modifies
        assert resize == {"PrefixListId": prefix_list_id, "CurrentVersion": 1, "MaxEntries": 19}
        assert (added["PrefixListId"], added["CurrentVersion"], "MaxEntries" in added) == (
            prefix_list_id,
            1,
            False,
        )
        assert sorted(entry["Cidr"] for entry in added["AddEntries"]) == sorted(expected)
        assert {entry["Description"].split(" ")[0] for entry in added["AddEntries"]} == {
            f"sgmesh:{mesh.spec.cluster}"
        }
        assert max_entries(mesh, region, prefix_list_id) == 19


# --- the version race -------------------------------------------------------------------------------


class RacingConsumer:
    """Just before the product's first `operation` call in `region`, another consumer of the region (a
    second concurrent batch) applies a newer snapshot and writes the list first."""

    def __init__(self, mesh: Mesh, region: str, messages: list[dict[str, Any]], operation: str) -> None:
        self.mesh = mesh
        self.region = region
        self.messages = messages
        self.operation = operation
        self.fired = False

    def register(self, client: Any) -> None:
        client.meta.events.register(f"before-parameter-build.ec2.{self.operation}", self.race)

    def race(self, **_: Any) -> None:
        if self.fired:
            return
        self.fired = True
        response = self.mesh.deliver(self.region, self.messages)
        assert response["batchItemFailures"] == []


@pytest.mark.parametrize(
    ("operation", "rejected"),
    [
        # the other consumer writes between our reads and our write: our write loses the version race
        ("ModifyManagedPrefixList", ["PrefixListVersionMismatch"]),
        # it writes just before we read the list: the desired state, read after the list, has its member
        ("DescribeManagedPrefixLists", []),
    ],
)
def test_a_write_that_loses_the_version_race_retries_and_converges_without_dropping_a_member(
    mesh: Mesh, checks: PrefixListChecks, operation: str, rejected: list[str]
) -> None:
    # GIVEN eu-west-1's list holds the first snapshots of all three groups, and its queue then gets
    # two batches: us-west-2's next snapshot (a new member), then us-east-1's (another new member)
    lists = use_prefix_lists(mesh, max_entries=20)
    region = "eu-west-1"
    cluster = {name: members(index, 2) for index, name in enumerate(mesh.regions)}
    for name, group_members in cluster.items():
        publish(mesh, name, 1, group_members)
    mesh.deliver(region, mesh.drain(region))
    cluster["us-west-2"] = cluster["us-west-2"] + members(1, 1, first=2)
    publish(mesh, "us-west-2", 2, cluster["us-west-2"])
    first_batch = mesh.drain(region)
    newcomer = members(0, 1, first=2)
    cluster["us-east-1"] = cluster["us-east-1"] + newcomer
    publish(mesh, "us-east-1", 2, cluster["us-east-1"])
    racer = RacingConsumer(mesh, region, mesh.drain(region), operation)
    racer.register(mesh.factory.ec2(region))  # the region's product client, already built

    # WHEN the second batch's consumer writes the list while the first batch's consumer is at work
    response = mesh.deliver(region, first_batch)

    # THEN a write at a version that is no longer current is refused, and the consumer re-plans
    assert racer.fired
    assert response["batchItemFailures"] == []
    assert checks.rejected == [(code, lists[region]) for code in rejected]
    expected = {member.public_ipv4 for group in cluster.values() for member in group if member.public_ipv4}
    assert entries(mesh, region, lists[region]) == expected
    # ... and no version of the list ever lacked a member it had held before that is still desired
    # (moto alone applies a stale write on top of the version it names, which drops the newcomer)
    history = entry_history(region, lists[region])
    seen: set[str] = set()
    for version in sorted(history):
        assert seen & expected <= history[version], f"version {version} dropped a member"
        seen |= history[version]
    assert newcomer[0].public_ipv4 in seen


# --- the emulation itself -----------------------------------------------------------------------------


def test_the_emulation_answers_as_aws_does_for_a_stale_version_too_many_entries_and_a_mixed_resize(
    mesh: Mesh, checks: PrefixListChecks
) -> None:
    region = mesh.regions[0]
    prefix_list_id = use_prefix_lists(mesh, max_entries=1)[region]
    ec2 = mesh.factory.ec2(region)

    def code(**params: Any) -> str:
        with pytest.raises(ClientError) as error:
            ec2.modify_managed_prefix_list(PrefixListId=prefix_list_id, **params)
        return str(error.value.response["Error"]["Code"])

    entry: AddPrefixListEntryTypeDef = {"Cidr": "54.0.0.1/32", "Description": "x"}
    assert code(CurrentVersion=7, AddEntries=[entry]) == "PrefixListVersionMismatch"
    assert (
        code(CurrentVersion=1, AddEntries=[entry, {"Cidr": "54.0.0.2/32"}]) == "PrefixListMaxEntriesExceeded"
    )
    assert code(CurrentVersion=1, AddEntries=[entry], MaxEntries=5) == "InvalidParameterCombination"
    # a valid write passes through to moto, and a resize alone keeps the version
    assert (
        ec2.modify_managed_prefix_list(PrefixListId=prefix_list_id, CurrentVersion=1, AddEntries=[entry])[
            "PrefixList"
        ]["Version"]
        == 2
    )
    resized = ec2.modify_managed_prefix_list(PrefixListId=prefix_list_id, CurrentVersion=2, MaxEntries=4)
    assert (resized["PrefixList"]["Version"], resized["PrefixList"]["MaxEntries"]) == (2, 4)
    assert code(CurrentVersion=2, MaxEntries=0) == "InvalidParameterValue"
