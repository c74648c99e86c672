"""Address modes and protocols: which addresses each mode admits, and the rules each port spec gives them."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.reconcile import desired_rules, plan_group
from consumers.review import GroupReview
from producers.snapshot import select_members
from schemas.errors import RuleQuotaExceededError
from schemas.events import Member, Source
from schemas.inventory import GroupInstance, InstanceAddresses
from schemas.quota import Family
from schemas.rules import InboundRule, Permission
from schemas.settings import AddressMode, PortSpec
from tests.fakes import make_snapshot

EU = Source(account="111111111111", region="eu-west-1", group="cassandra")
GROUP = "sg-0123456789abcdef0"
TCP = PortSpec.parse("tcp:7000-7001")


@st.composite
def instance_addresses(draw: st.DrawFn, n: int) -> InstanceAddresses:
    """Any mix of the three kinds of address an instance may have, none included."""
    return InstanceAddresses(
        instance_id=f"i-{n:017x}",
        public_ipv4=draw(st.sampled_from([None, f"54.0.{n // 250}.{n % 250 + 1}"])),
        private_ipv4=draw(st.sampled_from([None, f"10.0.{n // 250}.{n % 250 + 1}"])),
        ipv6=tuple(f"2600:1f18:{n + 1:x}::{k + 1:x}" for k in range(draw(st.integers(0, 2)))),
    )


@st.composite
def fleets(draw: st.DrawFn) -> list[InstanceAddresses]:
    return [draw(instance_addresses(n)) for n in range(draw(st.integers(0, 12)))]


def admitted(known: InstanceAddresses, mode: AddressMode) -> set[str]:
    """Written out independently of the product: the addresses (as CIDRs) each mode admits."""
    public = {f"{known.public_ipv4}/32"} if known.public_ipv4 else set()
    private = {f"{known.private_ipv4}/32"} if known.private_ipv4 else set()
    ipv6 = {f"{address}/128" for address in known.ipv6}
    return {
        AddressMode.PUBLIC: public,
        AddressMode.PRIVATE: private,
        AddressMode.IPV6: ipv6,
        AddressMode.DUAL_STACK: public | ipv6,
    }[mode]


def carrying_every_address(known: InstanceAddresses) -> Member:
    return Member(
        instance_id=known.instance_id,
        public_ipv4=f"{known.public_ipv4}/32" if known.public_ipv4 else None,
        private_ipv4=f"{known.private_ipv4}/32" if known.private_ipv4 else None,
        ipv6=tuple(f"{address}/128" for address in known.ipv6),
    )


def members_of(fleet: list[InstanceAddresses], mode: AddressMode) -> tuple[Member, ...]:
    instances = [GroupInstance(known.instance_id, "InService") for known in fleet]
    return select_members(instances, {known.instance_id: known for known in fleet}, mode).members


# --- membership and desired rules per mode -------------------------------------------------------------


@given(fleet=fleets(), mode=st.sampled_from(AddressMode))
def test_any_fleet_in_any_mode_members_are_the_instances_with_an_address_the_mode_admits(
    fleet: list[InstanceAddresses], mode: AddressMode
) -> None:
    members = members_of(fleet, mode)

    assert {member.instance_id for member in members} == {
        known.instance_id for known in fleet if admitted(known, mode)
    }


@given(fleet=fleets(), mode=st.sampled_from(AddressMode))
def test_any_fleet_in_any_mode_desired_rules_are_exactly_the_modes_addresses_times_the_ports(
    fleet: list[InstanceAddresses], mode: AddressMode
) -> None:
    ports = (TCP, PortSpec.parse("udp:7002"))
    # The snapshot carries every known address, whatever mode the producer ran in.
    snapshot = make_snapshot(EU, 1, [carrying_every_address(known) for known in fleet])

    desired = desired_rules("prod", [snapshot], ports, mode)

    addresses = set().union(*(admitted(known, mode) for known in fleet))
    assert set(desired) == {
        Permission(spec.protocol, spec.from_port, spec.to_port, cidr) for spec in ports for cidr in addresses
    }


@given(fleet=fleets(), mode=st.sampled_from(AddressMode))
def test_any_member_the_producer_publishes_contributes_rules_in_its_mode(
    fleet: list[InstanceAddresses], mode: AddressMode
) -> None:
    members = members_of(fleet, mode)

    desired = desired_rules("prod", [make_snapshot(EU, 1, members)], [TCP], mode)

    contributors = {rule.description.rsplit("/", 1)[1] for rule in desired.values()}
    assert contributors == {member.instance_id for member in members}


def test_given_dual_stack_when_an_instance_has_only_one_family_then_it_is_still_a_member() -> None:
    fleet = [
        InstanceAddresses("i-00000000000000001", public_ipv4="54.0.0.1", private_ipv4="10.0.0.1"),
        InstanceAddresses("i-00000000000000002", private_ipv4="10.0.0.2", ipv6=("2600:1f18::2",)),
        InstanceAddresses("i-00000000000000003", private_ipv4="10.0.0.3"),
    ]

    members = members_of(fleet, AddressMode.DUAL_STACK)

    assert [member.instance_id for member in members] == ["i-00000000000000001", "i-00000000000000002"]


def test_given_ipv6_mode_when_a_member_has_two_ipv6_addresses_then_each_gets_the_rules() -> None:
    member = Member(
        instance_id="i-00000000000000001",
        public_ipv4="54.0.0.1/32",
        ipv6=("2600:1f18::1/128", "2600:1f18::2/128"),
    )

    desired = desired_rules("prod", [make_snapshot(EU, 1, [member])], [TCP], AddressMode.IPV6)

    assert set(desired) == {
        Permission("tcp", 7000, 7001, "2600:1f18::1/128"),
        Permission("tcp", 7000, 7001, "2600:1f18::2/128"),
    }


# --- protocols ------------------------------------------------------------------------------------------

V4 = "54.0.0.1/32"
V6 = "2600:1f18::1/128"


@pytest.mark.parametrize(
    ("spec", "ipv4", "ipv6"),
    [
        ("tcp:7000-7001", ("tcp", 7000, 7001), ("tcp", 7000, 7001)),
        ("udp:53", ("udp", 53, 53), ("udp", 53, 53)),
        ("all", ("-1", -1, -1), ("-1", -1, -1)),
        ("icmp", ("icmp", -1, -1), ("icmpv6", -1, -1)),
        ("icmp:8", ("icmp", 8, -1), None),
        ("icmp:3:4", ("icmp", 3, 4), None),
        ("icmpv6", None, ("icmpv6", -1, -1)),
        ("icmpv6:128", None, ("icmpv6", 128, -1)),
    ],
)
def test_given_a_spec_when_turned_into_rules_then_ec2s_protocol_and_numbers_per_family(
    spec: str, ipv4: tuple[str, int, int] | None, ipv6: tuple[str, int, int] | None
) -> None:
    parsed = PortSpec.parse(spec)

    assert Permission.for_spec(parsed, V4) == (Permission(*ipv4, V4) if ipv4 else None)
    assert Permission.for_spec(parsed, V6) == (Permission(*ipv6, V6) if ipv6 else None)


@pytest.mark.parametrize(
    ("described", "expected"),
    [
        (("-1", None, None), ("-1", -1, -1)),
        (("-1", -1, -1), ("-1", -1, -1)),
        (("-1", 0, 65535), ("-1", -1, -1)),
        (("1", 8, -1), ("icmp", 8, -1)),
        (("58", 128, -1), ("icmpv6", 128, -1)),
        (("icmpv6", None, None), ("icmpv6", -1, -1)),
        (("6", 22, 22), ("tcp", 22, 22)),
        (("17", 53, 53), ("udp", 53, 53)),
        (("50", None, None), ("50", -1, -1)),
    ],
)
def test_given_a_rule_as_ec2_describes_it_when_read_then_the_form_sgmesh_plans_with(
    described: tuple[str, int | None, int | None], expected: tuple[str, int, int]
) -> None:
    assert Permission.described(*described, V4) == Permission(*expected, V4)


def test_given_ec2_spells_an_ipv6_range_out_in_full_when_read_then_it_matches_the_members_form() -> None:
    described = Permission.described("tcp", 7000, 7001, "2600:1f18:0000:0000:0000:0000:0000:0001/128")

    assert described == Permission("tcp", 7000, 7001, V6)


SPECS = st.sampled_from(
    ["tcp:7000-7001", "udp:7002", "all", "icmp", "icmp:8", "icmp:3:4", "icmpv6", "icmpv6:128:0"]
).map(PortSpec.parse)


@given(fleet=fleets(), mode=st.sampled_from(AddressMode), ports=st.lists(SPECS, min_size=1, max_size=4))
def test_any_converged_group_in_any_mode_with_any_protocols_plans_empty(
    fleet: list[InstanceAddresses], mode: AddressMode, ports: list[PortSpec]
) -> None:
    desired = desired_rules("prod", [make_snapshot(EU, 1, members_of(fleet, mode))], ports, mode)
    # What EC2 stores for each authorized rule comes back through `described`, numbers as sent.
    existing = [
        InboundRule(
            f"sgr-{n}", Permission.described(p.protocol, p.from_port, p.to_port, p.cidr), rule.description
        )
        for n, (p, rule) in enumerate(desired.items())
    ]

    assert plan_group(GROUP, "prod", desired, existing).is_empty


# --- quota per family --------------------------------------------------------------------------------


def dual_stack_members(count: int) -> list[Member]:
    return [
        Member(instance_id=f"i-{n:017x}", public_ipv4=f"54.0.0.{n}/32", ipv6=(f"2600:1f18::{n:x}/128",))
        for n in range(1, count + 1)
    ]


@given(fleet=fleets())
def test_any_dual_stack_fleet_counts_ipv4_and_ipv6_rules_separately(fleet: list[InstanceAddresses]) -> None:
    members = members_of(fleet, AddressMode.DUAL_STACK)
    desired = desired_rules("prod", [make_snapshot(EU, 1, members)], [TCP], AddressMode.DUAL_STACK)

    counts = plan_group(GROUP, "prod", desired, []).weight_after([])

    assert counts[Family.IPV4] == sum(1 for known in fleet if known.public_ipv4)
    assert counts[Family.IPV6] == sum(len(known.ipv6) for known in fleet)


def test_given_40_dual_stack_members_when_checked_then_80_rules_fit_a_60_rule_quota() -> None:
    desired = desired_rules(
        "prod", [make_snapshot(EU, 1, dual_stack_members(40))], [TCP], AddressMode.DUAL_STACK
    )
    plan = plan_group(GROUP, "prod", desired, [])

    assert len(plan.authorize) == 80
    GroupReview.revoking_first(plan, [], 60).check()


def test_given_61_dual_stack_members_when_checked_then_over_quota_names_a_family() -> None:
    desired = desired_rules(
        "prod", [make_snapshot(EU, 1, dual_stack_members(61))], [TCP], AddressMode.DUAL_STACK
    )
    plan = plan_group(GROUP, "prod", desired, [])

    with pytest.raises(RuleQuotaExceededError, match="61 ipv4"):
        GroupReview.revoking_first(plan, [], 60).check()


def test_given_icmp_and_all_for_dual_stack_member_when_counted_then_each_family_gets_its_own() -> None:
    ports = [PortSpec.parse("all"), PortSpec.parse("icmp:8"), PortSpec.parse("icmpv6:128")]
    desired = desired_rules(
        "prod", [make_snapshot(EU, 1, dual_stack_members(1))], ports, AddressMode.DUAL_STACK
    )

    counts = plan_group(GROUP, "prod", desired, []).weight_after([])

    assert counts == Counter({Family.IPV4: 2, Family.IPV6: 2})
