"""Host addresses written as CIDRs: the only kind of source range sgmesh ever puts in a rule."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Annotated

from pydantic import AfterValidator, Field

# The ranges AWS recommends for VPCs: RFC 1918 space and the shared address space (RFC 6598). Schema
# version 1 accepted only these as private addresses; AWS allows any range, so version 2 accepts any.
PRIVATE_IPV4_RANGES = tuple(
    IPv4Network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
# "This network" (RFC 791): no host has an address in it, though Python calls it neither reserved nor
# unspecified.
THIS_NETWORK = IPv4Network("0.0.0.0/8")
# Unique local addresses (RFC 4193): the private IPv6 addresses a VPC may be numbered with.
UNIQUE_LOCAL_IPV6 = IPv6Network("fc00::/7")


def host_network(value: str) -> IPv4Network | IPv6Network:
    """Parse `address/32` or `address/128`, rejecting ranges and addresses no member can have."""
    if "/" not in value:
        raise ValueError(f"{value!r} must be written as address/32 or address/128")
    try:
        network = ip_network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"{value!r} is not an IP address in CIDR form") from error
    if network.prefixlen != network.max_prefixlen:
        raise ValueError(f"{value!r} is a range, not one host (only /32 and /128 are allowed)")
    address = network.network_address
    if (
        address.is_unspecified
        or address.is_loopback
        or address.is_multicast
        or address.is_link_local
        or address.is_reserved
    ):
        raise ValueError(f"{value!r} is a reserved address")
    return network


def public_ipv4_cidr(value: str) -> str:
    """A globally routable IPv4 host: what `public` mode allows into a rule."""
    network = host_network(value)
    if not isinstance(network.network_address, IPv4Address):
        raise ValueError(f"{value!r} is not an IPv4 address")
    if not network.network_address.is_global:
        raise ValueError(f"{value!r} is not a public address")
    return str(network)


def private_ipv4_cidr(value: str) -> str:
    """Any unicast IPv4 host: a VPC may be numbered in any range (11.0.0.0/16 as well as 10.0.0.0/16)."""
    network = host_network(value)
    address = network.network_address
    if not isinstance(address, IPv4Address):
        raise ValueError(f"{value!r} is not an IPv4 address")
    if address in THIS_NETWORK:
        raise ValueError(f"{value!r} is a reserved address")
    return str(network)


def ipv6_cidr(value: str) -> str:
    """A globally routable or unique local (fc00::/7) IPv6 host (/128)."""
    network = host_network(value)
    address = network.network_address
    if not isinstance(address, IPv6Address):
        raise ValueError(f"{value!r} is not an IPv6 address")
    if not address.is_global and address not in UNIQUE_LOCAL_IPV6:
        raise ValueError(f"{value!r} is neither a global nor a unique local IPv6 address")
    return str(network)


def in_version_1_bounds(private_ipv4: str | None, ipv6: tuple[str, ...]) -> bool:
    """Whether schema version 1 accepted these (valid) addresses: a private IPv4 in a range of
    PRIVATE_IPV4_RANGES, global IPv6 only."""
    private = private_ipv4 is None or any(
        host_network(private_ipv4).network_address in ranges for ranges in PRIVATE_IPV4_RANGES
    )
    return private and all(host_network(address).network_address.is_global for address in ipv6)


# The patterns publish the shape in the JSON Schema; the validators add what a pattern cannot say.
IPV4_HOST_PATTERN = r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/32$"
IPV6_HOST_PATTERN = r"^[0-9A-Fa-f:.]+/128$"

PublicIPv4Cidr = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": IPV4_HOST_PATTERN},
        description="A globally routable IPv4 host, as a.b.c.d/32.",
    ),
    AfterValidator(public_ipv4_cidr),
]
PrivateIPv4Cidr = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": IPV4_HOST_PATTERN},
        description="A unicast IPv4 host in the instance's VPC, in any range, as a.b.c.d/32.",
    ),
    AfterValidator(private_ipv4_cidr),
]
IPv6Cidr = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": IPV6_HOST_PATTERN},
        description="A globally routable or unique local (fc00::/7) IPv6 host, as an address/128.",
    ),
    AfterValidator(ipv6_cidr),
]
