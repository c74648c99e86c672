"""Customer-managed prefix lists and the group rules around them, as the prefix-list target sees them."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import PermanentError
from schemas.rules import Family


@dataclass(frozen=True, order=True)
class PrefixListEntry:
    cidr: str
    description: str = ""


@dataclass(frozen=True)
class PrefixListInfo:
    """What DescribeManagedPrefixLists says of a list: enough to weigh a rule that references it."""

    prefix_list_id: str
    family: Family
    version: int
    max_entries: int
    state: str = "create-complete"


@dataclass(frozen=True)
class PrefixListState:
    """One list at one version: its size limit and every entry it held at that version."""

    info: PrefixListInfo
    entries: tuple[PrefixListEntry, ...]

    @property
    def prefix_list_id(self) -> str:
        return self.info.prefix_list_id

    @property
    def cidrs(self) -> frozenset[str]:
        return frozenset(entry.cidr for entry in self.entries)


@dataclass(frozen=True)
class EntryBatch:
    """One ModifyManagedPrefixList call's worth of entry changes."""

    add: tuple[PrefixListEntry, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class Reference:
    """What a rule referencing a prefix list allows: AWS's identity for a duplicate reference."""

    protocol: str
    from_port: int
    to_port: int
    prefix_list_id: str

    def __str__(self) -> str:
        return f"{self.protocol}:{self.from_port}-{self.to_port} from {self.prefix_list_id}"


@dataclass(frozen=True)
class GroupRule:
    """An inbound rule as read from a group: a CIDR, a prefix-list reference, or a group reference."""

    rule_id: str
    protocol: str
    from_port: int
    to_port: int
    description: str = ""
    cidr: str | None = None
    prefix_list_id: str | None = None

    @property
    def reference(self) -> Reference | None:
        if self.prefix_list_id is None:
            return None
        return Reference(self.protocol, self.from_port, self.to_port, self.prefix_list_id)

    @property
    def cidr_family(self) -> Family | None:
        if self.cidr is None:
            return None
        return Family.IPV6 if ":" in self.cidr else Family.IPV4


class PrefixListConfigError(PermanentError):
    """The configured prefix lists cannot hold the desired entries; nothing was changed."""


class PrefixListModifyFailedError(PermanentError):
    """AWS refused a list change after accepting it (state *-failed), e.g. a resize a group cannot hold."""
