"""How AWS counts a group's inbound rules: per address family, each rule by its weight, against a budget."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from schemas.errors import RuleQuotaExceededError


class Family(StrEnum):
    """AWS counts a group's rule quota separately per address family."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @classmethod
    def of(cls, cidr: str) -> Family:
        """The family of an address or range: only IPv6 ones are written with colons."""
        return cls.IPV6 if ":" in cidr else cls.IPV4


FAMILIES = tuple(Family)


class Weighed(Protocol):
    @property
    def weight(self) -> Weight: ...


class Weight(Mapping[Family, int]):
    """Inbound rules per address family, as AWS counts them against a group's quota.

    A rule from a CIDR weighs one in the CIDR's family; a rule referencing a prefix list weighs the
    list's MaxEntries in the list's family; a rule referencing a group, or a list that could not be
    described, has no known family or size and weighs one in each (the stricter count for the first,
    a lower bound for the second). Immutable; a family with no rules is left out and reads as 0.
    """

    __slots__ = ("_counts",)

    def __init__(self, counts: Mapping[Family, int] | None = None) -> None:
        given = counts or {}
        self._counts = {family: given[family] for family in FAMILIES if given.get(family)}

    @classmethod
    def of_cidr(cls, cidr: str) -> Weight:
        # One of two values, made once: a plan weighs every desired rule.
        return _ONE_IN[Family.of(cidr)]

    @classmethod
    def of_list(cls, family: Family, max_entries: int) -> Weight:
        return cls({family: max_entries})

    @classmethod
    def unknown(cls) -> Weight:
        """A reference to a group, or to a list not described: one in each family."""
        return cls(dict.fromkeys(FAMILIES, 1))

    @classmethod
    def total(cls, weighed: Iterable[Weighed]) -> Weight:
        return sum((item.weight for item in weighed), cls())

    def __getitem__(self, family: Family) -> int:
        return self._counts.get(family, 0)

    def __contains__(self, family: object) -> bool:
        return family in self._counts

    def __iter__(self) -> Iterator[Family]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __hash__(self) -> int:
        return hash(frozenset(self._counts.items()))

    def __add__(self, other: Mapping[Family, int]) -> Weight:
        return Weight({family: self[family] + other.get(family, 0) for family in FAMILIES})

    def __sub__(self, other: Mapping[Family, int]) -> Weight:
        return Weight({family: self[family] - other.get(family, 0) for family in FAMILIES})

    def __mul__(self, factor: int) -> Weight:
        return Weight({family: count * factor for family, count in self._counts.items()})

    def __repr__(self) -> str:
        return f"Weight({ {family.value: count for family, count in self._counts.items()} })"

    def every_family(self) -> dict[Family, int]:
        """Each family's count, 0 included: what an operator reads."""
        return {family: self[family] for family in FAMILIES}

    def headroom(self, quota: int) -> dict[Family, int]:
        """What a group of this weight can still take, per family (negative when over)."""
        return {family: quota - self[family] for family in FAMILIES}

    def fits(self, added: Weight, quota: int) -> bool:
        """Whether a group of this weight can take `added`: EC2 refuses an authorize that would pass
        the quota in a family it adds to (and ignores the others)."""
        return all(self[family] + count <= quota for family, count in added.items())

    def check(self, group_id: str, quota: int) -> None:
        """Raise, naming the group, the rules it would hold and the quota, if a family passes it."""
        for family, count in self.items():
            if count > quota:
                raise RuleQuotaExceededError(group_id, family.value, count, quota)


_ONE_IN = {family: Weight({family: 1}) for family in FAMILIES}


class QuotaOrigin(StrEnum):
    """Which of the two readings bounds the budget."""

    SERVICE_QUOTAS = "service-quotas"
    SETTING = "setting"


@dataclass(frozen=True)
class RuleBudget:
    """Inbound rules allowed per group and address family.

    `service_quota` is the account's applied quota in the region, or None with `unreadable` saying
    why it could not be read; `setting` is SGMESH_RULE_QUOTA.
    """

    quota: int
    origin: QuotaOrigin
    setting: int
    service_quota: int | None = None
    unreadable: str | None = None


def rule_budget(setting: int, service_quota: int | None, unreadable: str | None = None) -> RuleBudget:
    """The smaller of the two: AWS refuses any rule over its applied quota, and the setting is the
    operator's own cap (and the only number there is when Service Quotas cannot be read)."""
    if service_quota is not None and service_quota <= setting:
        return RuleBudget(service_quota, QuotaOrigin.SERVICE_QUOTAS, setting, service_quota)
    return RuleBudget(setting, QuotaOrigin.SETTING, setting, service_quota, unreadable)
