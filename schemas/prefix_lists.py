"""Customer-managed prefix lists as the prefix-list target sees them: entries, size, version."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.quota import Family, Weight
from schemas.rules import InboundRule


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

    @property
    def weight(self) -> Weight:
        """What each rule referencing the list weighs: AWS counts it as the list's MaxEntries."""
        return Weight.of_list(self.family, self.max_entries)


def weigh_references(
    rules: Iterable[InboundRule], infos: Mapping[str, PrefixListInfo]
) -> tuple[InboundRule, ...]:
    """The rules, each reference to a described list weighing that list's MaxEntries."""
    weights = {prefix_list_id: info.weight for prefix_list_id, info in infos.items()}
    return tuple(rule.weighed(weights) for rule in rules)


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
