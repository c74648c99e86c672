"""Host CIDRs: only one-host prefixes of addresses a member can have get into a rule."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.addresses import (
    host_network,
    in_version_1_bounds,
    ipv6_cidr,
    private_ipv4_cidr,
    public_ipv4_cidr,
)


@pytest.mark.parametrize("value", ["54.1.2.3/32", "10.0.0.5/32", "2600:1f18:abcd::1/128"])
def test_given_one_host_prefix_when_parsed_then_accepted(value: str) -> None:
    network = host_network(value)

    assert str(network) == value
    assert network.prefixlen == network.max_prefixlen


@pytest.mark.parametrize(
    "value",
    [
        "0.0.0.0/0",
        "54.1.2.0/24",
        "::/0",
        "2600:1f18::/64",
        "54.1.2.3",
        "2600:1f18::1",
        "54.1.2.3/24",
        "54.1.2.3/33",
        "not-an-address/32",
        "0.0.0.0/32",
        "127.0.0.1/32",
        "::1/128",
        "169.254.169.254/32",
        "fe80::1/128",
        "224.0.0.1/32",
        "ff02::1/128",
        "240.0.0.1/32",
    ],
)
def test_given_range_bare_or_reserved_address_when_parsed_then_rejected_naming_it(value: str) -> None:
    with pytest.raises(ValueError, match=rf"^'{re.escape(value)}' "):
        host_network(value)


def test_given_bare_address_when_parsed_then_message_says_how_to_write_it() -> None:
    with pytest.raises(ValueError, match=r"address/32 or address/128"):
        host_network("54.1.2.3")


@pytest.mark.parametrize("value", ["10.0.0.5/32", "172.16.0.1/32", "192.168.1.1/32", "100.64.0.1/32"])
def test_given_private_address_when_public_mode_parses_it_then_not_a_public_address(value: str) -> None:
    with pytest.raises(ValueError, match=rf"'{re.escape(value)}' is not a public address"):
        public_ipv4_cidr(value)


def test_given_ipv6_host_when_public_ipv4_parses_it_then_rejected() -> None:
    with pytest.raises(ValueError, match="is not an IPv4 address"):
        public_ipv4_cidr("2600:1f18::1/128")


@pytest.mark.parametrize(
    "value",
    [
        "10.0.0.5/32",
        "10.255.255.254/32",
        "172.16.0.1/32",
        "172.31.255.254/32",
        "192.168.0.1/32",
        "100.64.0.1/32",
        "100.127.255.254/32",
    ],
)
def test_given_vpc_private_address_when_private_mode_parses_it_then_accepted(value: str) -> None:
    assert private_ipv4_cidr(value) == value


# AWS lets a VPC use any IPv4 range, not only the ranges it recommends (issue 12: one instance in an
# 11.0.0.0/16 VPC made every describe of its region fail).
@pytest.mark.parametrize(
    "value", ["54.1.2.3/32", "172.32.0.1/32", "192.169.0.1/32", "100.128.0.1/32", "11.0.0.1/32"]
)
def test_given_vpc_address_outside_the_recommended_ranges_when_parsed_as_private_then_accepted(
    value: str,
) -> None:
    assert private_ipv4_cidr(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0.1.2.3/32", "is a reserved address"),
        ("127.0.0.1/32", "is a reserved address"),
        ("169.254.169.254/32", "is a reserved address"),
        ("224.0.0.1/32", "is a reserved address"),
        ("255.255.255.255/32", "is a reserved address"),
        ("10.0.0.0/24", "is a range"),
        ("2600:1f18::1/128", "is not an IPv4 address"),
    ],
)
def test_given_no_unicast_ipv4_host_when_parsed_as_private_then_rejected_naming_it(
    value: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=rf"^'{re.escape(value)}' {reason}"):
        private_ipv4_cidr(value)


@pytest.mark.parametrize("value", ["fd12:3456:789a::1/128", "fc00::5/128", "2600:1f18:abcd::1/128"])
def test_given_unique_local_or_global_ipv6_when_parsed_then_accepted(value: str) -> None:
    assert ipv6_cidr(value) == value


@pytest.mark.parametrize("value", ["2001:db8::1/128", "100::1/128"])
def test_given_documentation_or_discard_ipv6_when_parsed_then_rejected_naming_it(value: str) -> None:
    with pytest.raises(ValueError, match=rf"^'{re.escape(value)}' (is neither a global|is a reserved)"):
        ipv6_cidr(value)


@pytest.mark.parametrize(
    ("private_ipv4", "ipv6", "version_1_took_them"),
    [
        ("10.0.0.5/32", ("2600:1f18::1/128",), True),
        (None, (), True),
        ("100.64.0.1/32", (), True),
        ("11.0.0.5/32", (), False),
        ("10.0.0.5/32", ("fd00::1/128",), False),
    ],
)
def test_version_1_took_private_addresses_of_the_recommended_ranges_and_global_ipv6_only(
    private_ipv4: str | None, ipv6: tuple[str, ...], version_1_took_them: bool
) -> None:
    assert in_version_1_bounds(private_ipv4, ipv6) is version_1_took_them


def test_given_ipv4_host_when_ipv6_parses_it_then_rejected() -> None:
    with pytest.raises(ValueError, match="is not an IPv6 address"):
        ipv6_cidr("54.1.2.3/32")


# Python 3.11 calls multicast IPv4 "global"; a multicast address is still no member's address.
@given(st.ip_addresses(v=4).filter(lambda address: address.is_global and not address.is_multicast))
def test_any_global_ipv4_host_round_trips_through_public_ipv4_cidr(address: IPv4Address) -> None:
    cidr = f"{address}/32"

    assert public_ipv4_cidr(cidr) == cidr


# 2000::/3 is the global unicast space AWS assigns from.
@given(st.ip_addresses(network="2000::/3").filter(lambda address: address.is_global))
def test_any_global_unicast_ipv6_host_round_trips_through_ipv6_cidr(address: IPv6Address) -> None:
    cidr = f"{address}/128"

    assert ipv6_cidr(cidr) == cidr
