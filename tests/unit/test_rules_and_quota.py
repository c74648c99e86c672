"""One rule model, one quota count: what a rule allows and weighs, read and written by one adapter."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from cloud.ec2 import Ec2
from consumers.reconcile import Plan
from consumers.review import GroupReview
from consumers.steps import schedule
from schemas.errors import RuleConflictError, RuleQuotaExceededError
from schemas.events import Source
from schemas.prefix_lists import PrefixListInfo, weigh_references
from schemas.quota import Family, Weight
from schemas.rules import DesiredRule, GroupReference, InboundRule, Permission, Reference, Traffic
from schemas.settings import PortSpec, Settings
from tests.fakes import (
    FakePrefixLists,
    FakeSecurityGroups,
    fake_consumer,
    make_member,
    make_snapshot,
    topic_arn,
)

GROUP = "sg-0123456789abcdef0"
V4_LIST = "pl-0000000000000004a"
V6_LIST = "pl-0000000000000006b"
PEER_GROUP = "sg-0fedcba9876543210"
SSH = Traffic("tcp", 22, 22)
EU = Source(account="111111111111", region="eu-west-1", group="cassandra")


# --- families and weights -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "family"),
    [("54.1.2.3/32", Family.IPV4), ("2600:1f18::1/128", Family.IPV6), ("::ffff:1.2.3.4/128", Family.IPV6)],
)
def test_an_address_is_of_one_family(cidr: str, family: Family) -> None:
    assert Family.of(cidr) is family


def test_a_weight_counts_per_family_leaves_empty_families_out_and_adds_up() -> None:
    weight = Weight({Family.IPV4: 3, Family.IPV6: 0})

    assert dict(weight) == {Family.IPV4: 3}
    assert weight[Family.IPV6] == 0
    assert Family.IPV6 not in weight
    assert weight + Weight.of_list(Family.IPV6, 20) == {Family.IPV4: 3, Family.IPV6: 20}
    assert weight - Weight.of_cidr("54.1.2.3/32") == {Family.IPV4: 2}
    assert weight.every_family() == {Family.IPV4: 3, Family.IPV6: 0}
    assert weight.headroom(5) == {Family.IPV4: 2, Family.IPV6: 5}


def test_a_group_over_its_quota_in_one_family_still_takes_rules_of_the_other() -> None:
    # GIVEN a group at 61 IPv6 rules (the quota was lowered under it) and 59 IPv4 rules, quota 60
    held = Weight({Family.IPV4: 59, Family.IPV6: 61})

    # THEN one more IPv4 rule fits, a second does not, and no IPv6 rule does
    assert held.fits(Weight.of_cidr("54.1.2.3/32"), 60)
    assert not held.fits(Weight({Family.IPV4: 2}), 60)
    assert not held.fits(Weight.of_cidr("2600:1f18::1/128"), 60)


def test_a_weight_over_the_quota_names_the_group_the_family_and_the_count() -> None:
    with pytest.raises(RuleQuotaExceededError) as raised:
        Weight({Family.IPV4: 60, Family.IPV6: 61}).check(GROUP, 60)

    assert (raised.value.group_id, raised.value.family, raised.value.rules_needed, raised.value.quota) == (
        GROUP,
        "ipv6",
        61,
        60,
    )


# --- what a rule allows and weighs ------------------------------------------------------------------


def test_port_specs_give_each_family_its_own_traffic() -> None:
    specs = [PortSpec.parse(text) for text in ("tcp:7000-7001", "icmp:8", "icmpv6:128", "icmp", "all")]

    assert [str(traffic) for traffic in Traffic.for_specs(specs, Family.IPV4)] == [
        "tcp:7000-7001",
        "icmp type 8",
        "icmp any",
        "all traffic",
    ]
    assert [str(traffic) for traffic in Traffic.for_specs(specs, Family.IPV6)] == [
        "tcp:7000-7001",
        "icmpv6 type 128",
        "icmpv6 any",
        "all traffic",
    ]


def test_a_rule_weighs_what_its_source_tells_and_a_described_list_its_max_entries_in_its_family() -> None:
    rules = [
        InboundRule("sgr-1", SSH.from_cidr("203.0.113.7/32")),
        InboundRule("sgr-2", SSH.from_cidr("2600:1f18::7/128")),
        InboundRule("sgr-3", SSH.from_group(PEER_GROUP)),
        InboundRule("sgr-4", SSH.from_list(V6_LIST)),
        InboundRule("sgr-5", SSH.from_list(V4_LIST)),
    ]

    # Before the lists are described, a reference (like a group reference) weighs one in each family
    assert [dict(rule.weight) for rule in rules] == [
        {Family.IPV4: 1},
        {Family.IPV6: 1},
        {Family.IPV4: 1, Family.IPV6: 1},
        {Family.IPV4: 1, Family.IPV6: 1},
        {Family.IPV4: 1, Family.IPV6: 1},
    ]
    # ... and once described, its list's MaxEntries in the list's family only (a list not found stays)
    described = {V6_LIST: PrefixListInfo(V6_LIST, Family.IPV6, 3, 20)}
    weighed = weigh_references(rules, described)
    assert Weight.total(weighed) == {Family.IPV4: 1 + 1 + 1, Family.IPV6: 1 + 1 + 20 + 1}
    assert [rule.permission is not None for rule in weighed] == [True, True, False, False, False]
    assert [rule.reference for rule in weighed][3:] == [SSH.from_list(V6_LIST), SSH.from_list(V4_LIST)]


def test_a_replacing_rule_goes_after_its_replacement_where_the_group_holds_both_else_right_before() -> None:
    # GIVEN a group holding a per-address rule and an operator's, and a plan that replaces the
    # per-address rule with a reference to a list of 5 entries (weighing 5)
    existing = (
        InboundRule("sgr-old", Permission("tcp", 7000, 7001, "54.0.0.1/32"), "sgmesh:prod x"),
        InboundRule("sgr-op", SSH.from_cidr("203.0.113.7/32"), "bastion"),
    )
    reference = DesiredRule(
        Traffic("tcp", 7000, 7001).from_list(V4_LIST),
        "sgmesh:prod prefix-list ipv4",
        Weight({Family.IPV4: 5}),
    )
    plan = Plan(GROUP, (reference,), (existing[0],), replaced=(existing[0],))

    # WHEN ordered with room for both (quota 7), and without (quota 6)
    roomy, tight = (schedule([(plan, existing)], quota) for quota in (7, 6))

    # THEN with room the reference goes in first and the group peaks at 7; without, the old rule goes
    # first (a gap within the reconcile) and the group never passes 6
    assert [(bool(s.authorize), bool(s.revoke)) for s in roomy.steps] == [(True, False), (False, True)]
    assert [(bool(s.authorize), bool(s.revoke)) for s in tight.steps] == [(False, True), (True, False)]
    assert (dict(roomy.peaks[GROUP]), dict(tight.peaks[GROUP])) == ({Family.IPV4: 7}, {Family.IPV4: 6})
    review = GroupReview.of(plan, existing, tight.peaks[GROUP], quota=6)
    assert (dict(review.rules_before), dict(review.rules_after), review.over_quota) == (
        {Family.IPV4: 2},
        {Family.IPV4: 6},
        False,
    )
    assert review.headroom == {Family.IPV4: 0, Family.IPV6: 6}


def test_in_security_group_mode_an_ipv6_list_reference_does_not_count_against_the_ipv4_quota() -> None:
    # GIVEN a group with an operator's rule referencing an IPv6 list of 50 entries, and 57 IPv4 rules
    settings = Settings(
        cluster="prod",
        region="eu-west-1",
        table_name="sgmesh-prod",
        security_group_ids=(GROUP,),
        ports=(PortSpec.parse("tcp:7000-7001"), PortSpec.parse("udp:7002")),
        peer_topic_arns=(topic_arn(EU),),
    )
    groups = FakeSecurityGroups(GROUP)
    groups.add_rule(GROUP, SSH.from_list(V6_LIST), "office over IPv6")
    for n in range(57):
        groups.add_rule(GROUP, SSH.from_cidr(f"203.0.113.{n + 1}/32"), "operator")
    lists = FakePrefixLists(PrefixListInfo(V6_LIST, Family.IPV6, 1, 50))
    consumer = fake_consumer(settings, groups=groups, lists=lists)

    # WHEN a member arrives (2 IPv4 rules: 59 of 60; IPv6 50 of 60)
    consumer.apply([make_snapshot(EU, 1, [make_member("i-00000000000000001", "54.1.0.1/32")])])

    # THEN it is admitted, and the group's review weighs the reference in IPv6 only
    (review,) = consumer.plan().groups
    assert review.rules_before == {Family.IPV4: 59, Family.IPV6: 50}
    assert review.plan.is_empty


# --- the security-group adapter -----------------------------------------------------------------------


def stubbed_ec2() -> tuple[Ec2, Stubber]:
    client = boto3.client("ec2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return Ec2(client), Stubber(client)


def described_rule(rule_id: str, **fields: Any) -> dict[str, Any]:
    return {"SecurityGroupRuleId": rule_id, "GroupId": GROUP, "IsEgress": False, **fields}


def test_the_adapter_reads_address_list_and_group_rules_in_the_form_the_planners_build() -> None:
    ec2, stubber = stubbed_ec2()
    page = {
        "SecurityGroupRules": [
            described_rule("sgr-1", IpProtocol="6", FromPort=7000, ToPort=7001, CidrIpv4="54.1.2.3/32"),
            described_rule("sgr-2", IpProtocol="-1", FromPort=-1, ToPort=-1, CidrIpv6="2600:1f18:0::1/128"),
            described_rule("sgr-3", IpProtocol="tcp", FromPort=9042, ToPort=9042, PrefixListId=V4_LIST),
            described_rule(
                "sgr-4", IpProtocol="tcp", FromPort=22, ToPort=22, ReferencedGroupInfo={"GroupId": PEER_GROUP}
            ),
            {**described_rule("sgr-5", IpProtocol="-1", CidrIpv4="0.0.0.0/0"), "IsEgress": True},
        ]
    }
    stubber.add_response(
        "describe_security_group_rules", page, {"Filters": [{"Name": "group-id", "Values": [GROUP]}]}
    )

    with stubber:
        rules = ec2.ingress_rules(GROUP)

    assert [rule.allows for rule in rules] == [
        Permission("tcp", 7000, 7001, "54.1.2.3/32"),
        Permission("-1", -1, -1, "2600:1f18::1/128"),
        Reference("tcp", 9042, 9042, V4_LIST),
        GroupReference("tcp", 22, 22, PEER_GROUP),
    ]


def test_the_adapter_authorizes_addresses_and_lists_in_one_call_grouped_by_traffic() -> None:
    ec2, stubber = stubbed_ec2()
    rules = [
        DesiredRule(Permission("tcp", 7000, 7001, "54.1.2.3/32"), "sgmesh:prod a"),
        DesiredRule(Permission("tcp", 7000, 7001, "2600:1f18::1/128"), "sgmesh:prod b"),
        DesiredRule(Permission("-1", -1, -1, "54.1.2.3/32"), "sgmesh:prod a"),
        DesiredRule(Reference("tcp", 7000, 7001, V4_LIST), "sgmesh:prod prefix-list ipv4"),
    ]
    expected = {
        "GroupId": GROUP,
        "IpPermissions": [
            # all traffic from an address carries no ports
            {
                "IpProtocol": "-1",
                "IpRanges": [{"CidrIp": "54.1.2.3/32", "Description": "sgmesh:prod a"}],
                "Ipv6Ranges": [],
            },
            {
                "IpProtocol": "tcp",
                "FromPort": 7000,
                "ToPort": 7001,
                "IpRanges": [{"CidrIp": "54.1.2.3/32", "Description": "sgmesh:prod a"}],
                "Ipv6Ranges": [{"CidrIpv6": "2600:1f18::1/128", "Description": "sgmesh:prod b"}],
                "PrefixListIds": [{"PrefixListId": V4_LIST, "Description": "sgmesh:prod prefix-list ipv4"}],
            },
        ],
    }
    stubber.add_response("authorize_security_group_ingress", {"Return": True}, expected)

    with stubber:
        ec2.authorize(GROUP, rules)
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("code", ["InvalidPermission.Duplicate", "InvalidPermission.NotFound"])
def test_the_adapter_turns_anothers_write_into_a_conflict_to_replan(code: str) -> None:
    ec2, stubber = stubbed_ec2()
    stubber.add_client_error("revoke_security_group_ingress", service_error_code=code, http_status_code=400)

    with stubber, pytest.raises(RuleConflictError, match=code):
        ec2.revoke(GROUP, [InboundRule("sgr-1", Permission("tcp", 22, 22, "54.1.2.3/32"))])
