"""Inbound rules as sgmesh sees them: traffic from a CIDR, a prefix list or a group, and their weight."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from ipaddress import ip_network

from schemas.quota import Family, Weight
from schemas.settings import ANY, PortSpec

# EC2's protocol for all traffic.
ALL_TRAFFIC = "-1"
# EC2 may report a protocol by its number; sgmesh plans with the names it sends, so read them as names.
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}
# Left out of a rule, its weight is what the rule alone tells (see InboundRule).
UNWEIGHED = Weight()


@dataclass(frozen=True, order=True)
class Traffic:
    """A rule's protocol and ports (for ICMP, type and code): what it allows, from wherever."""

    protocol: str
    from_port: int
    to_port: int

    @classmethod
    def for_spec(cls, spec: PortSpec, family: Family) -> Traffic | None:
        """The traffic a port spec allows from a source of one family; None where a typed ICMP spec
        is the other family's.

        ICMP type numbers differ between the families (echo request is 8 in ICMP, 128 in ICMPv6), so
        `icmp:8` admits IPv4 sources only and `icmpv6:128` IPv6 only; `icmp` (any type) admits both,
        as ICMPv6 for an IPv6 source, the protocol EC2 requires there.
        """
        ipv6 = family is Family.IPV6
        if spec.protocol == "all":
            return cls(ALL_TRAFFIC, ANY, ANY)
        if spec.protocol == "icmp" and ipv6:
            return cls("icmpv6", ANY, ANY) if spec.from_port == ANY else None
        if spec.protocol == "icmpv6" and not ipv6:
            return None
        return cls(spec.protocol, spec.from_port, spec.to_port)

    @classmethod
    def for_specs(cls, ports: Iterable[PortSpec], family: Family) -> tuple[Traffic, ...]:
        """What the port specs allow from a source of one family, in their order: for a prefix list,
        one referencing rule each."""
        return tuple(traffic for spec in ports if (traffic := cls.for_spec(spec, family)) is not None)

    @classmethod
    def described(cls, protocol: str, from_port: int | None, to_port: int | None) -> Traffic:
        """Traffic as EC2 describes it, in the form `for_spec` builds, so a converged group plans empty."""
        name = PROTOCOL_NAMES.get(protocol, protocol)
        if name == ALL_TRAFFIC:
            # Ports mean nothing for all traffic; EC2 reports -1 or leaves them out.
            return cls(name, ANY, ANY)
        return cls(name, ANY if from_port is None else from_port, ANY if to_port is None else to_port)

    def from_cidr(self, cidr: str) -> Permission:
        return Permission(self.protocol, self.from_port, self.to_port, cidr)

    def from_list(self, prefix_list_id: str) -> Reference:
        return Reference(self.protocol, self.from_port, self.to_port, prefix_list_id)

    def from_group(self, group_id: str) -> GroupReference:
        return GroupReference(self.protocol, self.from_port, self.to_port, group_id)

    def __str__(self) -> str:
        if self.protocol == ALL_TRAFFIC:
            return "all traffic"
        if self.protocol in ("icmp", "icmpv6"):
            kind = "any" if self.from_port == ANY else f"type {self.from_port}"
            code = "" if self.to_port == ANY else f" code {self.to_port}"
            return f"{self.protocol} {kind}{code}"
        return f"{self.protocol}:{self.from_port}-{self.to_port}"


@dataclass(frozen=True, order=True)
class Permission:
    """What one inbound rule allows from one address range: the identity AWS uses to detect a duplicate."""

    protocol: str
    from_port: int
    to_port: int
    cidr: str

    @property
    def traffic(self) -> Traffic:
        return Traffic(self.protocol, self.from_port, self.to_port)

    @property
    def family(self) -> Family:
        return Family.of(self.cidr)

    @classmethod
    def for_spec(cls, spec: PortSpec, cidr: str) -> Permission | None:
        """The rule a port spec gives one address; None where a typed ICMP spec is the other family's."""
        traffic = Traffic.for_spec(spec, Family.of(cidr))
        return None if traffic is None else traffic.from_cidr(cidr)

    @classmethod
    def described(cls, protocol: str, from_port: int | None, to_port: int | None, cidr: str) -> Permission:
        """A rule as EC2 describes it, in the form `for_spec` builds, so a converged group plans empty."""
        return Traffic.described(protocol, from_port, to_port).from_cidr(_compressed(cidr))

    def __str__(self) -> str:
        return f"{self.traffic} from {self.cidr}"


@dataclass(frozen=True, order=True)
class Reference:
    """What a rule referencing a prefix list allows: AWS's identity for a duplicate reference."""

    protocol: str
    from_port: int
    to_port: int
    prefix_list_id: str

    @property
    def traffic(self) -> Traffic:
        return Traffic(self.protocol, self.from_port, self.to_port)

    def __str__(self) -> str:
        return f"{self.traffic} from {self.prefix_list_id}"


@dataclass(frozen=True, order=True)
class GroupReference:
    """What a rule referencing another security group allows (an operator's; sgmesh writes none)."""

    protocol: str
    from_port: int
    to_port: int
    group_id: str

    @property
    def traffic(self) -> Traffic:
        return Traffic(self.protocol, self.from_port, self.to_port)

    def __str__(self) -> str:
        return f"{self.traffic} from {self.group_id}"


# What an inbound rule allows: traffic from a CIDR, a prefix list or a group.
Allows = Permission | Reference | GroupReference


def _compressed(cidr: str) -> str:
    """An IPv6 range has many spellings; members carry the compressed one, so compare that."""
    try:
        return str(ip_network(cidr, strict=False))
    except ValueError:
        return cidr


def _least_weight(allows: Allows) -> Weight:
    """What a rule weighs as far as `allows` alone tells: a list's size takes a describe."""
    return Weight.of_cidr(allows.cidr) if isinstance(allows, Permission) else Weight.unknown()


@dataclass(frozen=True)
class InboundRule:
    """An inbound rule as read from a group: its id, what it allows, its description, its weight.

    Left out, `weight` is what `allows` alone tells (one in a CIDR's family, one in each family for a
    reference); a prefix-list reference weighs its list's MaxEntries once the list is described
    (`weighed`).
    """

    rule_id: str
    allows: Allows
    description: str = ""
    weight: Weight = UNWEIGHED

    def __post_init__(self) -> None:
        if not self.weight:
            object.__setattr__(self, "weight", _least_weight(self.allows))

    @property
    def permission(self) -> Permission | None:
        """What the rule allows, if it allows it from a CIDR."""
        return self.allows if isinstance(self.allows, Permission) else None

    @property
    def reference(self) -> Reference | None:
        """What the rule allows, if it allows it from a prefix list."""
        return self.allows if isinstance(self.allows, Reference) else None

    def weighed(self, lists: Mapping[str, Weight]) -> InboundRule:
        """The rule with its weight, if it references one of the `lists` (by id, the list's weight)."""
        reference = self.reference
        if reference is None or reference.prefix_list_id not in lists:
            return self
        return replace(self, weight=lists[reference.prefix_list_id])


@dataclass(frozen=True)
class DesiredRule:
    """A rule sgmesh wants in a group: what it allows (from a member's address, or from the prefix
    list that holds them), its description (the marker, then what it stands for), and its weight.

    Left out, `weight` is one in a CIDR's family; the planner of a reference gives its list's.
    """

    allows: Permission | Reference
    description: str
    weight: Weight = UNWEIGHED

    def __post_init__(self) -> None:
        if not self.weight:
            object.__setattr__(self, "weight", _least_weight(self.allows))

    @property
    def permission(self) -> Permission | None:
        return self.allows if isinstance(self.allows, Permission) else None

    @property
    def reference(self) -> Reference | None:
        return self.allows if isinstance(self.allows, Reference) else None
