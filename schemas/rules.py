"""Ingress rules as sgmesh sees them: a permission (what is allowed) and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
        return Family.IPV6 if ":" in self.cidr else Family.IPV4

    def __str__(self) -> str:
        return f"{self.protocol}:{self.from_port}-{self.to_port} from {self.cidr}"


@dataclass(frozen=True)
class DesiredRule:
    permission: Permission
    description: str


@dataclass(frozen=True)
class ExistingRule:
    """An inbound rule read from a group; `permission` is None for group or prefix-list references."""

    rule_id: str
    permission: Permission | None
    description: str
