"""Selecting a snapshot's members from what Auto Scaling and EC2 report about a group."""

from __future__ import annotations

import pytest

from producers.snapshot import select_members
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

    members = select_members(instances, known, AddressMode.PUBLIC)

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
    )

    assert member.public_ipv4 == "54.1.2.1/32"
    assert member.private_ipv4 == "10.0.0.1/32"
    assert member.ipv6 == ("2600:1f18:abcd::1/128", "2600:1f18:abcd::2/128")
    assert member.availability_zone == "eu-west-1a"
    assert member.lifecycle_state == "InService"


def test_given_leaving_instance_when_selected_then_excluded_even_if_still_in_service() -> None:
    instances = [
        GroupInstance("i-00000000000000001", "InService"),
        GroupInstance("i-00000000000000002", "InService"),
    ]
    known = addresses(BOTH, InstanceAddresses("i-00000000000000002", public_ipv4="54.1.2.2"))

    members = select_members(instances, known, AddressMode.PUBLIC, leaving={"i-00000000000000002"})

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
    members = select_members([GroupInstance(BOTH.instance_id, state)], addresses(BOTH), AddressMode.PUBLIC)

    assert members == ()


@pytest.mark.parametrize("state", ["Pending", "Pending:Wait", "Pending:Proceed", "InService", "Standby"])
def test_given_joining_or_serving_state_when_selected_then_included(state: str) -> None:
    members = select_members([GroupInstance(BOTH.instance_id, state)], addresses(BOTH), AddressMode.PUBLIC)

    assert [member.instance_id for member in members] == [BOTH.instance_id]


def test_given_public_mode_when_instance_has_only_private_address_then_excluded() -> None:
    instances = [
        GroupInstance("i-00000000000000001", "InService"),
        GroupInstance("i-00000000000000002", "InService"),
    ]
    known = addresses(BOTH, InstanceAddresses("i-00000000000000002", private_ipv4="10.0.0.2"))

    members = select_members(instances, known, AddressMode.PUBLIC)

    assert [member.instance_id for member in members] == ["i-00000000000000001"]


def test_given_private_mode_when_instance_has_only_public_address_then_excluded() -> None:
    instances = [
        GroupInstance("i-00000000000000001", "InService"),
        GroupInstance("i-00000000000000002", "InService"),
    ]
    known = addresses(BOTH, InstanceAddresses("i-00000000000000002", public_ipv4="54.1.2.2"))

    members = select_members(instances, known, AddressMode.PRIVATE)

    assert [member.instance_id for member in members] == ["i-00000000000000001"]


def test_given_private_mode_when_instance_has_only_private_address_then_included() -> None:
    known = addresses(InstanceAddresses("i-00000000000000002", private_ipv4="10.0.0.2"))

    (member,) = select_members(
        [GroupInstance("i-00000000000000002", "InService")], known, AddressMode.PRIVATE
    )

    assert member.private_ipv4 == "10.0.0.2/32"
    assert member.public_ipv4 is None


def test_given_instance_ec2_does_not_know_when_selected_then_excluded() -> None:
    members = select_members(
        [GroupInstance("i-00000000000000009", "InService")], addresses(BOTH), AddressMode.PUBLIC
    )

    assert members == ()


def test_given_ipv6_mode_when_instance_has_no_ipv6_address_then_excluded() -> None:
    instances = [
        GroupInstance("i-00000000000000001", "InService"),
        GroupInstance("i-00000000000000002", "InService"),
    ]
    known = addresses(
        BOTH, InstanceAddresses("i-00000000000000002", private_ipv4="10.0.0.2", ipv6=("2600:1f18::2",))
    )

    (member,) = select_members(instances, known, AddressMode.IPV6)

    assert member.instance_id == "i-00000000000000002"
    assert member.ipv6 == ("2600:1f18::2/128",)
    assert member.private_ipv4 == "10.0.0.2/32"
