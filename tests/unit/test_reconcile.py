"""Desired rules and the per-group plan: only this cluster's marked rules are ever revoked."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.budget import fit
from consumers.reconcile import Plan, desired_rules, plan_group
from consumers.review import GroupReview
from schemas.errors import RuleQuotaExceededError
from schemas.events import Member, Source
from schemas.rules import DesiredRule, GroupReference, InboundRule, Permission
from schemas.settings import AddressMode, PortSpec
from tests.fakes import make_member, make_snapshot

GROUP = "sg-0123456789abcdef0"
PORTS = (PortSpec.parse("tcp:7000-7001"), PortSpec.parse("udp:7002"))
EU = Source(account="111111111111", region="eu-west-1", group="cassandra")
US = Source(account="111111111111", region="us-east-1", group="cassandra")
# What AWS allows in a rule description: a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*
AWS_DESCRIPTION = re.compile(r"^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{0,255}$")
# A rule referencing another group: no CIDR, so it weighs one in each family.
BASTION_GROUP = GroupReference("tcp", 22, 22, "sg-0bbbbbbbbbbbbbbb1")


def tcp(cidr: str, port: int = 7000, to_port: int = 7001) -> Permission:
    return Permission("tcp", port, to_port, cidr)


def desired_for(*cidrs: str) -> dict[Permission, DesiredRule]:
    members = [make_member(f"i-{n:017x}", cidr) for n, cidr in enumerate(cidrs, 1)]
    return desired_rules("prod", [make_snapshot(EU, 1, members)], PORTS, AddressMode.PUBLIC)


def managed(rule_id: str, permission: Permission, cluster: str = "prod") -> InboundRule:
    return InboundRule(rule_id, permission, f"sgmesh:{cluster} eu-west-1/cassandra/i-00000000000000001")


def quota_error(plan: Plan, existing: list[InboundRule], quota: int) -> RuleQuotaExceededError | None:
    """Why additions wait once the plan is fitted to the quota (consumers.budget), if some do."""
    fitted = fit(plan, existing, quota)
    return GroupReview.of(fitted, existing, fitted.weight_after(existing), quota).quota_error()


def v4_rules(count: int, description: str = "operator", first: int = 0) -> list[InboundRule]:
    return [
        InboundRule(f"sgr-v4-{n}", tcp(f"203.0.{n // 250}.{n % 250}/32", 22, 22), description)
        for n in range(first, first + count)
    ]


def v6_rules(count: int) -> list[InboundRule]:
    return [
        InboundRule(f"sgr-v6-{n}", tcp(f"2600:1f18::{n + 1:x}/128", 22, 22), "operator") for n in range(count)
    ]


# --- desired ------------------------------------------------------------------------------------------


def test_given_members_of_two_sources_when_desired_then_every_port_times_every_address() -> None:
    eu = make_snapshot(EU, 3, [make_member("i-00000000000000001", "54.1.1.1/32", "10.0.0.1/32")])
    us = make_snapshot(
        US,
        9,
        [
            make_member("i-00000000000000002", "54.2.2.2/32", "10.0.0.2/32"),
            make_member("i-00000000000000003", "54.3.3.3/32", "10.0.0.3/32"),
        ],
    )

    desired = desired_rules("prod", [eu, us], PORTS, AddressMode.PUBLIC)

    assert set(desired) == {
        Permission(protocol, from_port, to_port, cidr)
        for protocol, from_port, to_port in [("tcp", 7000, 7001), ("udp", 7002, 7002)]
        for cidr in ["54.1.1.1/32", "54.2.2.2/32", "54.3.3.3/32"]
    }
    assert all(rule.permission == permission for permission, rule in desired.items())


def test_given_private_mode_when_desired_then_private_addresses_only() -> None:
    snapshot = make_snapshot(
        EU,
        1,
        [
            make_member("i-00000000000000001", "54.1.1.1/32", "10.0.0.1/32"),
            make_member("i-00000000000000002", None, "10.0.0.2/32"),
        ],
    )

    desired = desired_rules("prod", [snapshot], PORTS[:1], AddressMode.PRIVATE)

    assert set(desired) == {tcp("10.0.0.1/32"), tcp("10.0.0.2/32")}


def test_given_member_without_the_modes_address_when_desired_then_skipped() -> None:
    snapshot = make_snapshot(EU, 1, [make_member("i-00000000000000001", None, "10.0.0.1/32")])

    assert desired_rules("prod", [snapshot], PORTS, AddressMode.PUBLIC) == {}


def test_given_no_sources_when_desired_then_nothing() -> None:
    assert desired_rules("prod", [], PORTS, AddressMode.PUBLIC) == {}


def test_given_member_when_described_then_marker_first_then_source_and_instance() -> None:
    desired = desired_for("54.1.1.1/32")

    descriptions = {rule.description for rule in desired.values()}

    assert descriptions == {"sgmesh:prod 111111111111/eu-west-1/cassandra/i-00000000000000001"}


def test_given_group_name_with_forbidden_and_too_many_characters_when_described_then_aws_accepts_it() -> None:
    source = Source(account="111111111111", region="eu-west-1", group="cassandra<é>\"'%?" + "x" * 239)
    snapshot = make_snapshot(source, 1, [make_member("i-00000000000000001", "54.1.1.1/32")])

    (rule, *_) = desired_rules("prod-eu.1", [snapshot], PORTS, AddressMode.PUBLIC).values()

    assert rule.description.startswith("sgmesh:prod-eu.1 111111111111/eu-west-1/cassandra")
    assert len(rule.description) <= 255
    assert AWS_DESCRIPTION.match(rule.description)


# --- plan ---------------------------------------------------------------------------------------------


def test_given_some_desired_rules_present_when_planned_then_only_missing_ones_are_authorized() -> None:
    desired = desired_for("54.1.1.1/32", "54.2.2.2/32")
    existing = [
        managed("sgr-1", tcp("54.1.1.1/32")),
        managed("sgr-2", Permission("udp", 7002, 7002, "54.1.1.1/32")),
    ]

    plan = plan_group(GROUP, "prod", desired, existing)

    assert {rule.permission for rule in plan.authorize} == {
        tcp("54.2.2.2/32"),
        Permission("udp", 7002, 7002, "54.2.2.2/32"),
    }
    assert plan.revoke == ()
    assert plan.group_id == GROUP


def test_given_managed_rule_no_longer_desired_when_planned_then_revoked() -> None:
    stale = managed("sgr-old", tcp("54.9.9.9/32"))

    plan = plan_group(GROUP, "prod", desired_for("54.1.1.1/32"), [stale])

    assert plan.revoke == (stale,)


@pytest.mark.parametrize(
    "rule",
    [
        InboundRule("sgr-ssh", tcp("203.0.113.7/32", 22, 22), "ssh from the office"),
        InboundRule("sgr-blank", tcp("203.0.113.8/32", 22, 22), ""),
        InboundRule("sgr-other", tcp("54.8.8.8/32"), "sgmesh:other eu-west-1/cassandra/i-00000000000000001"),
        InboundRule("sgr-prefix", tcp("54.8.8.9/32"), "sgmesh:prod-eu eu-west-1/cassandra/i-0000000000001"),
        InboundRule("sgr-glued", tcp("54.8.8.10/32"), "sgmesh:prodeu-west-1/cassandra"),
        InboundRule("sgr-later", tcp("54.8.8.11/32"), "note sgmesh:prod"),
        InboundRule("sgr-case", tcp("54.8.8.12/32"), "SGMESH:prod eu-west-1/cassandra"),
        InboundRule("sgr-ref", BASTION_GROUP, "sgmesh:prod reference to a group"),
    ],
    ids=[
        "operator",
        "blank",
        "other-cluster",
        "cluster-name-prefix",
        "no-space",
        "not-first",
        "case",
        "reference",
    ],
)
def test_given_rule_without_this_clusters_marker_when_planned_then_never_revoked(rule: InboundRule) -> None:
    plan = plan_group(GROUP, "prod", desired_for("54.1.1.1/32"), [rule])

    assert plan.revoke == ()


def test_given_operator_rule_with_a_desired_permission_when_planned_then_it_counts_as_present() -> None:
    operator = InboundRule("sgr-op", tcp("54.1.1.1/32"), "cassandra node, added by hand")

    plan = plan_group(GROUP, "prod", desired_for("54.1.1.1/32"), [operator])

    assert tcp("54.1.1.1/32") not in {rule.permission for rule in plan.authorize}
    assert plan.revoke == ()


def test_given_group_that_matches_when_planned_then_plan_is_empty() -> None:
    desired = desired_for("54.1.1.1/32")
    existing = [managed(f"sgr-{n}", permission) for n, permission in enumerate(desired)]

    assert plan_group(GROUP, "prod", desired, existing).is_empty


# --- quota --------------------------------------------------------------------------------------------


def test_given_plan_over_quota_when_fitted_then_the_address_waits_and_the_error_names_group_and_rules() -> (
    None
):
    existing = v4_rules(59)
    plan = plan_group(GROUP, "prod", desired_for("54.1.1.1/32"), existing)

    error = quota_error(plan, existing, 60)

    assert error is not None
    assert (error.group_id, error.family, error.rules_needed, error.quota) == (GROUP, "ipv4", 61, 60)
    assert str(error) == (
        f"security group {GROUP} would need 61 ipv4 inbound rules, over its quota of 60; "
        "the additions that do not fit wait (removals went ahead)"
    )


def test_given_59_ipv4_and_2_ipv6_rules_when_fitted_then_within_quota() -> None:
    existing = [*v4_rules(57), *v6_rules(2)]
    plan = plan_group(GROUP, "prod", desired_for("54.1.1.1/32"), existing)

    assert len(plan.authorize) == 2
    assert quota_error(plan, existing, 60) is None


def test_given_61_ipv6_rules_when_fitted_then_ipv6_is_over_quota() -> None:
    existing = [*v4_rules(10), *v6_rules(59)]
    address = "2600:1f18::99/128"
    desired = {
        p: DesiredRule(p, "sgmesh:prod x") for p in (tcp(address), Permission("udp", 7002, 7002, address))
    }
    plan = plan_group(GROUP, "prod", desired, existing)

    assert "61 ipv6" in str(quota_error(plan, existing, 60))


def test_given_full_group_whose_members_are_replaced_when_fitted_then_revokes_make_room() -> None:
    existing = [managed(f"sgr-{n}", tcp(f"54.9.{n}.1/32", 7000, 7000)) for n in range(60)]
    desired = {
        tcp(f"54.1.{n}.1/32", 7000, 7000): DesiredRule(tcp(f"54.1.{n}.1/32", 7000, 7000), "sgmesh:prod x")
        for n in range(60)
    }
    plan = plan_group(GROUP, "prod", desired, existing)

    assert len(plan.revoke) == len(plan.authorize) == 60
    assert fit(plan, existing, 60) == plan


def test_given_group_reference_rule_when_fitted_then_it_counts_against_the_quota() -> None:
    existing = [*v4_rules(58), InboundRule("sgr-ref", BASTION_GROUP, "from the bastion group")]
    plan = plan_group(
        GROUP,
        "prod",
        {
            tcp("54.1.1.1/32"): DesiredRule(tcp("54.1.1.1/32"), "sgmesh:prod x"),
            tcp("54.1.1.2/32"): DesiredRule(tcp("54.1.1.2/32"), "sgmesh:prod x"),
        },
        existing,
    )

    fitted = fit(plan, existing, 60)

    assert [rule.allows for rule in fitted.authorize] == [tcp("54.1.1.1/32")]
    assert [rule.allows for rule in fitted.waiting] == [tcp("54.1.1.2/32")]
    assert "61 ipv4" in str(quota_error(plan, existing, 60))


# --- property: applying the plan converges ------------------------------------------------------------

CIDRS = st.sampled_from(
    [f"54.0.0.{n}/32" for n in range(1, 9)] + [f"2600:1f18::{n}/128" for n in range(1, 4)]
)
PERMISSIONS = st.builds(
    Permission,
    protocol=st.sampled_from(["tcp", "udp"]),
    from_port=st.just(7000),
    to_port=st.sampled_from([7000, 7001]),
    cidr=CIDRS,
)
DESCRIPTIONS = st.sampled_from(
    [
        "sgmesh:prod eu-west-1/cassandra/i-00000000000000001",
        "sgmesh:prod",
        "sgmesh:prod-eu eu-west-1/cassandra/i-00000000000000001",
        "sgmesh:other us-east-1/cassandra/i-00000000000000002",
        "office vpn",
        "",
    ]
)


@st.composite
def existing_rules(draw: st.DrawFn) -> list[InboundRule]:
    # A group never holds two rules with the same permission: EC2 refuses the second as a duplicate.
    permissions = draw(st.lists(PERMISSIONS, unique=True, max_size=12))
    rules = [InboundRule(f"sgr-{n}", p, draw(DESCRIPTIONS)) for n, p in enumerate(permissions)]
    references = draw(st.integers(0, 2))
    return rules + [InboundRule(f"sgr-ref-{n}", BASTION_GROUP, draw(DESCRIPTIONS)) for n in range(references)]


def is_prod_managed(rule: InboundRule) -> bool:
    return rule.permission is not None and (
        rule.description == "sgmesh:prod" or rule.description.startswith("sgmesh:prod ")
    )


@given(
    desired_permissions=st.sets(PERMISSIONS, max_size=10),
    existing=existing_rules(),
)
def test_applying_the_plan_makes_managed_rules_desired_and_leaves_unmarked_rules_alone(
    desired_permissions: set[Permission], existing: list[InboundRule]
) -> None:
    desired = {
        p: DesiredRule(p, "sgmesh:prod eu-west-1/cassandra/i-00000000000000009") for p in desired_permissions
    }

    plan = plan_group(GROUP, "prod", desired, existing)
    revoked = {rule.rule_id for rule in plan.revoke}
    after = [rule for rule in existing if rule.rule_id not in revoked] + [
        InboundRule(f"sgr-new-{n}", rule.allows, rule.description) for n, rule in enumerate(plan.authorize)
    ]

    unmanaged_before = [rule for rule in existing if not is_prod_managed(rule)]
    unmanaged_permissions = {rule.permission for rule in unmanaged_before}
    managed_after = {rule.permission for rule in after if is_prod_managed(rule)}
    all_after = [rule.permission for rule in after if rule.permission is not None]
    assert managed_after == desired_permissions - unmanaged_permissions
    assert desired_permissions <= set(all_after)
    assert len(all_after) == len(set(all_after)), "a permission was authorized twice"
    assert [rule for rule in after if not is_prod_managed(rule)] == unmanaged_before


def test_given_dual_stack_member_and_icmp_spec_when_desired_then_icmp_for_ipv4_and_icmpv6_for_ipv6() -> None:
    member = Member(
        instance_id="i-00000000000000001",
        public_ipv4="54.1.1.1/32",
        private_ipv4="10.0.0.1/32",
        ipv6=("2600:1f18::1/128",),
    )

    desired = desired_rules(
        "prod", [make_snapshot(EU, 1, [member])], [PortSpec.parse("icmp")], AddressMode.DUAL_STACK
    )

    assert set(desired) == {
        Permission("icmp", -1, -1, "54.1.1.1/32"),
        Permission("icmpv6", -1, -1, "2600:1f18::1/128"),
    }
