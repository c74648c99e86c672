"""Selecting a snapshot's members from what Auto Scaling and EC2 report about a group: by the current
state, and with only the addresses the snapshot's schema accepts, the mode's decisive."""

from __future__ import annotations

import pytest

from producers.snapshot import Selection, select_members
from schemas.inventory import GroupInstance, InstanceAddresses
from schemas.settings import AddressMode


def addresses(*known: InstanceAddresses) -> dict[str, InstanceAddresses]:
    return {entry.instance_id: entry for entry in known}


BOTH = InstanceAddresses("i-00000000000000001", public_ipv4="54.1.2.1", private_ipv4="10.0.0.1")


def test_given_instances_out_of_order_when_selected_then_sorted_by_instance_id() -> None:
    instances = [
        GroupInstance("i-0000000000000000c", "InService", "eu-west-1c"),
        GroupInstance("i-0000000000000000a", "InService", "eu-west-1a"),
        GroupInstance("i-0000000000000000b", "Pending:Wait", "eu-west-1b"),
    ]
    known = addresses(
        *(InstanceAddresses(i.instance_id, public_ipv4=f"54.1.2.{n}") for n, i in enumerate(instances, 1))
    )

    members = select_members(instances, known, AddressMode.PUBLIC).members

    assert [member.instance_id for member in members] == [
        "i-0000000000000000a",
        "i-0000000000000000b",
        "i-0000000000000000c",
    ]


def test_given_bare_addresses_when_selected_then_members_carry_host_prefixes() -> None:
    known = addresses(
        InstanceAddresses(
            "i-00000000000000001",
            public_ipv4="54.1.2.1",
            private_ipv4="10.0.0.1",
            ipv6=("2600:1f18:abcd::1", "2600:1f18:abcd::2"),
        )
    )

    (member,) = select_members(
        [GroupInstance("i-00000000000000001", "InService", "eu-west-1a")], known, AddressMode.PUBLIC
    ).members

    assert member.public_ipv4 == "54.1.2.1/32"
    assert member.private_ipv4 == "10.0.0.1/32"
    assert member.ipv6 == ("2600:1f18:abcd::1/128", "2600:1f18:abcd::2/128")
    assert member.availability_zone == "eu-west-1a"
    assert member.lifecycle_state == "InService"


def test_given_an_instance_back_in_service_then_it_is_a_member_whatever_action_was_about_it() -> None:
    # The state decides: a scale-in's lifecycle event delivered again after the instance came back
    # from the warm pool into service must not take it out (issue 12); select_members takes no action.
    instances = [GroupInstance("i-00000000000000001", "InService")]

    members = select_members(instances, addresses(BOTH), AddressMode.PUBLIC).members

    assert [member.instance_id for member in members] == ["i-00000000000000001"]


@pytest.mark.parametrize(
    "state",
    [
        "Terminating",
        "Terminating:Wait",
        "Terminating:Proceed",
        "Terminated",
        "Detaching",
        "Detached",
        "Warmed:Pending",
        "Warmed:Pending:Wait",
        "Warmed:Stopped",
        "Warmed:Running",
        "Warmed:Hibernated",
    ],
)
def test_given_leaving_or_warm_pool_state_when_selected_then_excluded(state: str) -> None:
    members = select_members(
        [GroupInstance(BOTH.instance_id, state)], addresses(BOTH), AddressMode.PUBLIC
    ).members

    assert members == ()


@pytest.mark.parametrize("state", ["Pending", "Pending:Wait", "Pending:Proceed", "InService", "Standby"])
def test_given_joining_or_serving_state_when_selected_then_included(state: str) -> None:
    members = select_members(
        [GroupInstance(BOTH.instance_id, state)], addresses(BOTH), AddressMode.PUBLIC
    ).members

    assert [member.instance_id for member in members] == [BOTH.instance_id]


def test_given_public_mode_when_instance_has_only_private_address_then_excluded() -> None:
    instances = [
        GroupInstance("i-00000000000000001", "InService"),
        GroupInstance("i-00000000000000002", "InService"),
    ]
    known = addresses(BOTH, InstanceAddresses("i-00000000000000002", private_ipv4="10.0.0.2"))

    members = select_members(instances, known, AddressMode.PUBLIC).members

    assert [member.instance_id for member in members] == ["i-00000000000000001"]


def test_given_private_mode_when_instance_has_only_public_address_then_excluded() -> None:
    instances = [
        GroupInstance("i-00000000000000001", "InService"),
        GroupInstance("i-00000000000000002", "InService"),
    ]
    known = addresses(BOTH, InstanceAddresses("i-00000000000000002", public_ipv4="54.1.2.2"))

    members = select_members(instances, known, AddressMode.PRIVATE).members

    assert [member.instance_id for member in members] == ["i-00000000000000001"]


def test_given_private_mode_when_instance_has_only_private_address_then_included() -> None:
    known = addresses(InstanceAddresses("i-00000000000000002", private_ipv4="10.0.0.2"))

    (member,) = select_members(
        [GroupInstance("i-00000000000000002", "InService")], known, AddressMode.PRIVATE
    ).members

    assert member.private_ipv4 == "10.0.0.2/32"
    assert member.public_ipv4 is None


def test_given_instance_ec2_does_not_know_when_selected_then_excluded() -> None:
    members = select_members(
        [GroupInstance("i-00000000000000009", "InService")], addresses(BOTH), AddressMode.PUBLIC
    ).members

    assert members == ()


def test_given_ipv6_mode_when_instance_has_no_ipv6_address_then_excluded() -> None:
    instances = [
        GroupInstance("i-00000000000000001", "InService"),
        GroupInstance("i-00000000000000002", "InService"),
    ]
    known = addresses(
        BOTH, InstanceAddresses("i-00000000000000002", private_ipv4="10.0.0.2", ipv6=("2600:1f18::2",))
    )

    (member,) = select_members(instances, known, AddressMode.IPV6).members

    assert member.instance_id == "i-00000000000000002"
    assert member.ipv6 == ("2600:1f18::2/128",)
    assert member.private_ipv4 == "10.0.0.2/32"


# --- addresses the schema refuses -----------------------------------------------------------------

ODD = "i-0000000000000000d"
USUAL = InstanceAddresses(
    "i-00000000000000001", public_ipv4="54.1.2.1", private_ipv4="10.0.0.1", ipv6=("2600:1f18::1",)
)
ELEVEN = InstanceAddresses(ODD, public_ipv4="54.1.2.9", private_ipv4="11.0.3.7", ipv6=("fd00:ec2::9",))


def selected(mode: AddressMode, *known: InstanceAddresses) -> Selection:
    return select_members([GroupInstance(k.instance_id, "InService") for k in known], addresses(*known), mode)


@pytest.mark.parametrize("mode", list(AddressMode))
def test_an_instance_of_an_11_slash_16_vpc_with_a_ula_is_a_member_in_every_mode_it_has_addresses_for(
    mode: AddressMode,
) -> None:
    # GIVEN an instance of an 11.0.0.0/16 VPC with a unique local IPv6 address, beside a usual one
    selection = selected(mode, USUAL, ELEVEN)

    # THEN neither blocks anything: both are members, with every address, and nothing is left out
    assert [member.instance_id for member in selection.members] == [USUAL.instance_id, ODD]
    (odd,) = [member for member in selection.members if member.instance_id == ODD]
    assert (odd.private_ipv4, odd.ipv6) == ("11.0.3.7/32", ("fd00:ec2::9/128",))
    assert (selection.left_out, selection.dropped) == ((), ())


@pytest.mark.parametrize("mode", [AddressMode.PUBLIC, AddressMode.DUAL_STACK])
def test_an_unusable_address_in_a_field_the_mode_does_not_use_is_dropped_and_the_member_kept(
    mode: AddressMode,
) -> None:
    # GIVEN an instance whose private address no host can have (a describe AWS would never give)
    odd = InstanceAddresses(ODD, public_ipv4="54.1.2.9", private_ipv4="127.0.0.1")

    selection = selected(mode, USUAL, odd)

    # THEN it is a member without that address, and the dropped address is reported with why
    (member,) = [member for member in selection.members if member.instance_id == ODD]
    assert (member.public_ipv4, member.private_ipv4) == ("54.1.2.9/32", None)
    assert selection.left_out == ()
    (dropped,) = selection.dropped
    assert (dropped.instance_id, dropped.field, dropped.address) == (ODD, "private_ipv4", "127.0.0.1/32")
    assert "reserved" in dropped.reason


@pytest.mark.parametrize(
    ("mode", "odd", "field"),
    [
        (
            AddressMode.PUBLIC,
            InstanceAddresses(ODD, public_ipv4="100.64.0.9", private_ipv4="10.0.0.9"),
            "public_ipv4",
        ),
        (
            AddressMode.PRIVATE,
            InstanceAddresses(ODD, public_ipv4="54.1.2.9", private_ipv4="0.1.2.3"),
            "private_ipv4",
        ),
        (AddressMode.IPV6, InstanceAddresses(ODD, ipv6=("2600:1f18::9", "2001:db8::9")), "ipv6"),
        (
            AddressMode.DUAL_STACK,
            InstanceAddresses(ODD, public_ipv4="54.1.2.9", ipv6=("2001:db8::9",)),
            "ipv6",
        ),
    ],
)
def test_an_instance_whose_used_address_is_unusable_is_left_out_alone(
    mode: AddressMode, odd: InstanceAddresses, field: str
) -> None:
    selection = selected(mode, USUAL, odd)

    # THEN the usual instance is a member, and only the odd one is left out, with the address and why
    assert [member.instance_id for member in selection.members] == [USUAL.instance_id]
    assert selection.left_out_ids == {ODD}
    assert {problem.field for problem in selection.left_out} == {field}


def test_public_mode_still_admits_only_globally_routable_public_addresses() -> None:
    # A shared-space (RFC 6598) address in the public field is no internet address: never a rule.
    selection = selected(AddressMode.PUBLIC, InstanceAddresses(ODD, public_ipv4="100.64.0.9"))

    assert selection.members == ()
    (problem,) = selection.left_out
    assert "is not a public address" in problem.reason
