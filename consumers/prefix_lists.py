"""Pure: the prefix-list target's plan: entry changes per list, MaxEntries growth, referencing rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from consumers.errors import PrefixListConfigError
from consumers.reconcile import Plan, describe_rule, is_marked, marker, member_addresses
from consumers.review import GroupReview, ListReview, Review
from schemas.events import MembershipSnapshot
from schemas.prefix_lists import (
    EntryBatch,
    PrefixListEntry,
    PrefixListInfo,
    PrefixListState,
    weigh_references,
)
from schemas.quota import Family, Weight
from schemas.rules import DesiredRule, InboundRule, Reference, Traffic
from schemas.settings import AddressMode, PortSpec

# ModifyManagedPrefixList takes at most 100 AddEntries and 100 RemoveEntries per call.
CHANGES_PER_CALL = 100
# The most entries a customer-managed prefix list may have (its MaxEntries ceiling).
LIST_ENTRIES_LIMIT = 1000
# Growth adds room for this share of the members (at least MIN_HEADROOM) so that a scale-out does not
# resize the list every time: a resize is its own call and re-weighs every group that references it.
HEADROOM_SHARE = 0.1
MIN_HEADROOM = 10


DesiredEntries = Mapping[Family, Mapping[str, PrefixListEntry]]


def desired_entries(
    cluster: str, states: Iterable[MembershipSnapshot], mode: AddressMode
) -> dict[Family, dict[str, PrefixListEntry]]:
    """Every member address of every source, per family, described like a rule (source/instance)."""
    desired: dict[Family, dict[str, PrefixListEntry]] = {}
    for snapshot in sorted(states, key=lambda state: state.source.key):
        for member in snapshot.members:
            description = describe_rule(cluster, snapshot, member)
            for address in member_addresses(member, mode):
                entry = PrefixListEntry(address, description)
                desired.setdefault(Family.of(address), {}).setdefault(address, entry)
    return desired


def entry_batches(current: Iterable[str], desired: Mapping[str, PrefixListEntry]) -> tuple[EntryBatch, ...]:
    """The calls that turn `current` into exactly `desired`, each within the per-call limits.

    Only addresses that are not desired are removed, so no desired entry is missing at any point.
    Removals go in the earliest calls, beside the additions, so the list never holds more than
    max(len(current), len(desired)) entries in between: that is all the MaxEntries a plan needs.
    """
    present = set(current)
    add = [entry for cidr, entry in sorted(desired.items()) if cidr not in present]
    remove = sorted(present - desired.keys())
    calls = -(-max(len(add), len(remove)) // CHANGES_PER_CALL)
    return tuple(
        EntryBatch(
            add=tuple(add[index * CHANGES_PER_CALL : (index + 1) * CHANGES_PER_CALL]),
            remove=tuple(remove[index * CHANGES_PER_CALL : (index + 1) * CHANGES_PER_CALL]),
        )
        for index in range(calls)
    )


def with_headroom(needed: int) -> int:
    return min(LIST_ENTRIES_LIMIT, needed + max(MIN_HEADROOM, int(needed * HEADROOM_SHARE)))


@dataclass(frozen=True)
class ListPlan:
    """One list's changes: an optional resize (its own call, first), then the entry batches.

    `traffic` is what each entry is admitted on through the groups' references (one per port spec).
    """

    state: PrefixListState
    grow_to: int | None
    batches: tuple[EntryBatch, ...]
    traffic: tuple[Traffic, ...]

    @property
    def prefix_list_id(self) -> str:
        return self.state.prefix_list_id

    @property
    def max_entries_after(self) -> int:
        return self.grow_to if self.grow_to is not None else self.state.info.max_entries

    @property
    def added(self) -> tuple[PrefixListEntry, ...]:
        return tuple(entry for batch in self.batches for entry in batch.add)

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(cidr for batch in self.batches for cidr in batch.remove)

    @property
    def entries_after(self) -> int:
        return len(self.state.entries) + len(self.added) - len(self.removed)

    @property
    def is_empty(self) -> bool:
        return self.grow_to is None and not self.batches

    def review(self) -> ListReview:
        described = {entry.cidr: entry for entry in self.state.entries}
        return ListReview(
            prefix_list_id=self.prefix_list_id,
            family=self.state.info.family,
            added=self.added,
            removed=tuple(described.get(cidr, PrefixListEntry(cidr)) for cidr in self.removed),
            entries_before=len(self.state.entries),
            entries_after=self.entries_after,
            max_entries_before=self.state.info.max_entries,
            max_entries_after=self.max_entries_after,
            traffic=self.traffic,
        )


@dataclass(frozen=True)
class TargetPlan:
    """Every list's changes, then every group's: the references it gains and the rules it loses.

    A group's references are authorized before anything is revoked, so at its peak it holds both.
    """

    lists: tuple[ListPlan, ...]
    groups: tuple[GroupReview, ...]
    quota: int

    @property
    def is_empty(self) -> bool:
        return all(plan.is_empty for plan in self.lists) and all(g.plan.is_empty for g in self.groups)

    def check(self) -> None:
        """Raise, naming the group, its weighted rule count and the quota, if any group would not fit."""
        for group in self.groups:
            group.check()

    def review(self) -> Review:
        return Review(self.groups, tuple(item.review() for item in self.lists))


def reference_description(cluster: str, family: Family) -> str:
    return f"{marker(cluster)} prefix-list {family.value}"


def desired_references(
    cluster: str, ports: Sequence[PortSpec], lists: Iterable[PrefixListInfo]
) -> dict[Reference, DesiredRule]:
    """One rule per port spec per list, each referencing the list and weighing its MaxEntries."""
    desired: dict[Reference, DesiredRule] = {}
    for info in lists:
        for traffic in Traffic.for_specs(ports, info.family):
            reference = traffic.from_list(info.prefix_list_id)
            desired[reference] = DesiredRule(
                reference, reference_description(cluster, info.family), info.weight
            )
    return desired


def plan_group_references(
    group_id: str, cluster: str, desired: Mapping[Reference, DesiredRule], rules: Sequence[InboundRule]
) -> Plan:
    """authorize(desired - present); revoke every other managed rule, per-address rules included.

    A per-address rule left from the security-group target is revoked only after the references
    are in place (see TargetPlan), so switching targets never drops a member. Unmarked rules are
    never touched, and an unmarked reference that already allows the same counts as present.
    """
    present = {rule.reference for rule in rules if rule.reference is not None}
    authorize = tuple(desired[ref] for ref in sorted(desired) if ref not in present)
    revoke = tuple(
        rule
        for rule in rules
        if is_marked(rule, cluster)
        and (rule.permission is not None or (rule.reference is not None and rule.reference not in desired))
    )
    return Plan(group_id, authorize, revoke)


def plan_target(
    *,
    cluster: str,
    ports: Sequence[PortSpec],
    quota: int,
    desired: DesiredEntries,
    lists: Sequence[PrefixListState],
    groups: Mapping[str, Sequence[InboundRule]],
    foreign: Mapping[str, PrefixListInfo],
) -> TargetPlan:
    """Everything the prefix-list target must change, with every group's weighted rule count.

    `foreign` describes the other lists the groups reference (an operator's), so that their weight
    counts too. A list grows (with headroom, capped by what every referencing group can still hold)
    only when the desired entries would not fit; it never shrinks on its own.
    """
    _check_lists(desired, lists)
    infos = {**foreign, **{state.prefix_list_id: state.info for state in lists}}
    list_plans = []
    for state in lists:
        wanted = desired.get(state.info.family, {})
        needed = max(len(wanted), len(state.entries))
        grow_to = None
        if needed > state.info.max_entries:
            cap = _growth_cap(state.info, _plan_groups(cluster, ports, lists, groups, infos), quota)
            grow_to = max(needed, min(with_headroom(needed), cap))
            infos[state.prefix_list_id] = replace(state.info, max_entries=grow_to)
        traffic = Traffic.for_specs(ports, state.info.family)
        list_plans.append(ListPlan(state, grow_to, entry_batches(state.cidrs, wanted), traffic))
    reviews = tuple(
        GroupReview.authorizing_first(plan, rules, quota)
        for plan, rules in _plan_groups(cluster, ports, lists, groups, infos)
    )
    return TargetPlan(tuple(list_plans), reviews, quota)


def _check_lists(desired: DesiredEntries, lists: Sequence[PrefixListState]) -> None:
    """One list per family, and one for every family with members, big enough for them."""
    by_family: dict[Family, PrefixListState] = {}
    for state in lists:
        other = by_family.setdefault(state.info.family, state)
        if other is not state:
            raise PrefixListConfigError(
                f"SGMESH_PREFIX_LIST_IDS has two {state.info.family.value} lists "
                f"({other.prefix_list_id}, {state.prefix_list_id}); give one per address family"
            )
    for family, entries in sorted(desired.items()):
        if entries and family not in by_family:
            raise PrefixListConfigError(
                f"{len(entries)} {family.value} member addresses, but SGMESH_PREFIX_LIST_IDS has no "
                f"{family.value} list; nothing was changed"
            )
        if len(entries) > LIST_ENTRIES_LIMIT:
            raise PrefixListConfigError(
                f"{len(entries)} {family.value} member addresses do not fit one prefix list "
                f"(at most {LIST_ENTRIES_LIMIT} entries); nothing was changed"
            )


def _plan_groups(
    cluster: str,
    ports: Sequence[PortSpec],
    lists: Sequence[PrefixListState],
    groups: Mapping[str, Sequence[InboundRule]],
    infos: Mapping[str, PrefixListInfo],
) -> list[tuple[Plan, tuple[InboundRule, ...]]]:
    """Each group's plan beside the rules it holds, every reference weighed as `infos` describe its list."""
    references = desired_references(cluster, ports, [infos[state.prefix_list_id] for state in lists])
    plans = []
    for group_id, rules in groups.items():
        weighed = weigh_references(rules, infos)
        plans.append((plan_group_references(group_id, cluster, references, weighed), weighed))
    return plans


def _growth_cap(info: PrefixListInfo, plans: Sequence[tuple[Plan, Sequence[InboundRule]]], quota: int) -> int:
    """The largest MaxEntries every group referencing the list can hold within the quota, at the peak
    of its plan (everything it holds, and the references it gains)."""
    cap = LIST_ENTRIES_LIMIT
    for plan, rules in plans:
        held: list[InboundRule | DesiredRule] = [*rules, *plan.authorize]
        referencing = [rule for rule in held if _references(rule, info.prefix_list_id)]
        if referencing:
            others = Weight.total(rule for rule in held if not _references(rule, info.prefix_list_id))
            cap = min(cap, (quota - others[info.family]) // len(referencing))
    return cap


def _references(rule: InboundRule | DesiredRule, prefix_list_id: str) -> bool:
    return rule.reference is not None and rule.reference.prefix_list_id == prefix_list_id
