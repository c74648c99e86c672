"""Ingress rules as sgmesh sees them: a permission (what is allowed) and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import ip_network

from schemas.settings import ANY, PortSpec

# EC2's protocol for all traffic.
ALL_TRAFFIC = "-1"
# EC2 may report a protocol by its number; sgmesh plans with the names it sends, so read them as names.
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}


class Family(StrEnum):
    """AWS counts a group's rule quota separately per address family."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"


@dataclass(frozen=True, order=True)
class Permission:
    """What one inbound rule allows: the identity AWS uses to detect a duplicate."""

    protocol: str
    from_port: int
    to_port: int
    cidr: str

    @property
    def family(self) -> Family:
        return family_of(self.cidr)

    @classmethod
    def for_spec(cls, spec: PortSpec, cidr: str) -> Permission | None:
        """The rule a port spec gives one address; None where a typed ICMP spec is the other family's.

        ICMP type numbers differ between the families (echo request is 8 in ICMP, 128 in ICMPv6), so
        `icmp:8` admits IPv4 addresses only and `icmpv6:128` IPv6 only; `icmp` (any type) admits both,
        as ICMPv6 for an IPv6 address, the protocol EC2 requires there.
        """
        ipv6 = family_of(cidr) is Family.IPV6
        if spec.protocol == "all":
            return cls(ALL_TRAFFIC, ANY, ANY, cidr)
        if spec.protocol == "icmp" and ipv6:
            return cls("icmpv6", ANY, ANY, cidr) if spec.from_port == ANY else None
        if spec.protocol == "icmpv6" and not ipv6:
            return None
        return cls(spec.protocol, spec.from_port, spec.to_port, cidr)

    @classmethod
    def described(cls, protocol: str, from_port: int | None, to_port: int | None, cidr: str) -> Permission:
        """A rule as EC2 describes it, in the form `for_spec` builds, so a converged group plans empty."""
        name = PROTOCOL_NAMES.get(protocol, protocol)
        cidr = _compressed(cidr)
        if name == ALL_TRAFFIC:
            # Ports mean nothing for all traffic; EC2 reports -1 or leaves them out.
            return cls(name, ANY, ANY, cidr)
        return cls(name, ANY if from_port is None else from_port, ANY if to_port is None else to_port, cidr)

    def __str__(self) -> str:
        if self.protocol == ALL_TRAFFIC:
            return f"all traffic from {self.cidr}"
        if self.protocol in ("icmp", "icmpv6"):
            kind = "any" if self.from_port == ANY else f"type {self.from_port}"
            code = "" if self.to_port == ANY else f" code {self.to_port}"
            return f"{self.protocol} {kind}{code} from {self.cidr}"
        return f"{self.protocol}:{self.from_port}-{self.to_port} from {self.cidr}"


def family_of(cidr: str) -> Family:
    return Family.IPV6 if ":" in cidr else Family.IPV4


def _compressed(cidr: str) -> str:
    """An IPv6 range has many spellings; members carry the compressed one, so compare that."""
    try:
        return str(ip_network(cidr, strict=False))
    except ValueError:
        return cidr


@dataclass(frozen=True)
class DesiredRule:
    permission: Permission
    description: str


@dataclass(frozen=True)
class ExistingRule:
    """An inbound rule read from a group; `permission` is None for group or prefix-list references.

    `weight` is how many rules AWS counts it as: a prefix-list reference weighs the list's MaxEntries.
    """

    rule_id: str
    permission: Permission | None
    description: str
    weight: int = 1
