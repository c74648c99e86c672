"""Pure: what a plan does to each managed group and prefix list, weighed against the rule quota."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from consumers.budget import waiting_error
from consumers.reconcile import Plan
from schemas.errors import RuleQuotaExceededError
from schemas.prefix_lists import PrefixListEntry
from schemas.quota import Family, Weight
from schemas.rules import InboundRule, Traffic


@dataclass(frozen=True)
class GroupReview:
    """A group's plan, and its inbound rules per address family as AWS counts the quota: now, at the
    plan's peak (the most it holds at any step: consumers.steps keeps it within the quota), and after.
    The plan's `waiting` additions are those the quota holds back (consumers.budget).
    """

    plan: Plan
    rules_before: Weight
    rules_peak: Weight
    rules_after: Weight
    quota: int

    @classmethod
    def of(cls, plan: Plan, existing: Sequence[InboundRule], peak: Weight, quota: int) -> GroupReview:
        return cls(plan, Weight.total(existing), peak, plan.weight_after(existing), quota)

    @property
    def group_id(self) -> str:
        return self.plan.group_id

    @property
    def over_quota(self) -> bool:
        """Whether additions wait: the whole plan would pass the quota."""
        return bool(self.plan.waiting)

    @property
    def headroom(self) -> dict[Family, int]:
        """What the group can still take per family once the plan is applied (negative when over)."""
        return self.rules_after.headroom(self.quota)

    def quota_error(self) -> RuleQuotaExceededError | None:
        """Naming the group, the rules it would have needed and the quota, if additions wait."""
        return waiting_error(self.plan, self.rules_after, self.quota)


@dataclass(frozen=True)
class ListReview:
    """A prefix list's plan: the entries it gains and loses, its entries and MaxEntries before and after.

    `traffic` is what each entry is admitted on, through the groups' references (one per port spec).
    """

    prefix_list_id: str
    family: Family
    added: tuple[PrefixListEntry, ...]
    removed: tuple[PrefixListEntry, ...]
    entries_before: int
    entries_after: int
    max_entries_before: int
    max_entries_after: int
    traffic: tuple[Traffic, ...]
    # Entries the quota holds back (the groups referencing the list cannot hold it bigger).
    waiting: tuple[PrefixListEntry, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.added and not self.removed and self.max_entries_after == self.max_entries_before

    def as_rules(self, entries: Iterable[PrefixListEntry]) -> tuple[str, ...]:
        """Entries written as the rules they amount to (each on every port spec), as the audit records
        them."""
        return tuple(str(traffic.from_cidr(entry.cidr)) for entry in entries for traffic in self.traffic)


@dataclass(frozen=True)
class Review:
    """Every managed group and prefix list, with what a reconcile changes (or would change) in each.

    `headroom` is the fewest rules any group can still take once the plans are applied, in either
    family, where the target reports it (the rule targets; see Outcome.RULE_HEADROOM).
    """

    groups: tuple[GroupReview, ...]
    lists: tuple[ListReview, ...] = ()
    headroom: int | None = None
    # The sources (account/region/group) whose stored snapshots the desired state was built from.
    sources: frozenset[str] = frozenset()
    # When the least recently heard of them produced its newest stored snapshot (retired ones aside).
    oldest_heard: datetime | None = None

    @property
    def waiting(self) -> bool:
        """Whether the quota holds additions back (a group's rules, or a list's entries)."""
        return any(group.over_quota for group in self.groups) or any(item.waiting for item in self.lists)

    @property
    def is_empty(self) -> bool:
        return all(group.plan.is_empty for group in self.groups) and all(item.is_empty for item in self.lists)


def least_headroom(groups: Sequence[GroupReview], quota: int) -> int:
    """The fewest rules any group can still take once its plan is applied, in either family."""
    return min((quota - max(group.rules_after.values(), default=0) for group in groups), default=quota)
