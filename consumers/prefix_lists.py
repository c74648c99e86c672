"""Pure: the prefix-list target's plan: entry changes per list, MaxEntries growth, referencing rules."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from consumers.attribution import SourceFacts, describe_member, marker
from consumers.budget import address_order, fit
from consumers.errors import ListFullError, PrefixListConfigError
from consumers.reconcile import Plan, is_marked, member_addresses
from consumers.review import GroupReview, ListReview, Review
from consumers.steps import schedule
from schemas.errors import RuleQuotaExceededError
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
            description = describe_member(cluster, snapshot.source, member.instance_id)
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
    # Entries the quota holds back: the groups referencing the list cannot hold it any bigger.
    waiting: tuple[PrefixListEntry, ...] = ()

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
            waiting=self.waiting,
        )

    def quota_error(self) -> RuleQuotaExceededError | None:
        if not self.waiting:
            return None
        needed = self.entries_after + len(self.waiting)
        return ListFullError(
            self.prefix_list_id, self.state.info.family.value, needed, self.max_entries_after
        )


@dataclass(frozen=True)
class TargetPlan:
    """Every list's changes, then every group's calls (consumers.steps): the references it gains and
    the rules it loses, the per-address rules they replace going once the references are in (or right
    before, where the group cannot hold both)."""

    lists: tuple[ListPlan, ...]
    groups: tuple[GroupReview, ...]
    steps: tuple[Plan, ...]
    quota: int
    # What the target learned of the sources, recorded once the calls are made (consumers.sources).
    sources: SourceFacts = field(default_factory=SourceFacts)

    @property
    def is_empty(self) -> bool:
        return all(plan.is_empty for plan in self.lists) and all(g.plan.is_empty for g in self.groups)

    def quota_error(self) -> RuleQuotaExceededError | None:
        """Why additions wait, if some do: a group's references, else a list's entries."""
        errors = (
            *(group.quota_error() for group in self.groups),
            *(item.quota_error() for item in self.lists),
        )
        return next((error for error in errors if error is not None), None)

    def review(self) -> Review:
        return Review(
            self.groups,
            tuple(item.review() for item in self.lists),
            sources=self.sources.counted,
            oldest_heard=self.sources.oldest_heard,
        )


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
    group_id: str,
    cluster: str,
    desired: Mapping[Reference, DesiredRule],
    rules: Sequence[InboundRule],
    *,
    listed: Collection[str] = frozenset(),
    wanted: Collection[str] = frozenset(),
    keep: Collection[str] = frozenset(),
) -> Plan:
    """authorize(desired - present); revoke every other managed rule, per-address rules included.

    A per-address rule left from the other targets whose address the lists hold (`listed`, once this
    reconcile's list writes are done) is replaced by the references: it goes once they are in. One
    whose address is `wanted` but not listed (the list is full) stays, as do the rules in `keep` (a
    source not heard from yet). Unmarked rules are never touched, and an unmarked reference that
    already allows the same counts as present.
    """
    present = {rule.reference for rule in rules if rule.reference is not None}
    authorize = tuple(desired[ref] for ref in sorted(desired) if ref not in present)
    revoke: list[InboundRule] = []
    replaced: list[InboundRule] = []
    for rule in rules:
        if not is_marked(rule, cluster) or rule.rule_id in keep:
            continue
        if rule.permission is None:
            if rule.reference is not None and rule.reference not in desired:
                revoke.append(rule)
        elif rule.permission.cidr in listed:
            replaced.append(rule)
        elif rule.permission.cidr not in wanted:
            revoke.append(rule)
    return Plan(group_id, authorize, tuple(revoke + replaced), tuple(replaced))


def plan_target(
    *,
    cluster: str,
    ports: Sequence[PortSpec],
    quota: int,
    desired: DesiredEntries,
    lists: Sequence[PrefixListState],
    groups: Mapping[str, Sequence[InboundRule]],
    foreign: Mapping[str, PrefixListInfo],
    keep_entries: Collection[str] = frozenset(),
    keep_rules: Collection[str] = frozenset(),
) -> TargetPlan:
    """Everything the prefix-list target must change, with every group's weighted rule count.

    `foreign` describes the other lists the groups reference (an operator's), so that their weight
    counts too; `keep_entries` (cidrs) and `keep_rules` (rule ids) are kept although no snapshot wants
    them (consumers.attribution). A list grows (with headroom, capped by what every referencing group
    can hold once its plan is applied) only when the entries it keeps and gains would not fit; it
    never shrinks on its own. Entries that still do not fit wait, lowest address first in.
    """
    _check_lists(desired, lists)
    infos = {**foreign, **{state.prefix_list_id: state.info for state in lists}}
    wanted = {cidr for entries in desired.values() for cidr in entries}

    def growth_cap(state: PrefixListState, listed: Collection[str]) -> int:
        plans = _plan_groups(cluster, ports, lists, groups, infos, listed, wanted, keep_rules)
        return _growth_cap(state.info, plans, quota)

    list_plans = []
    for state in lists:
        item = _plan_list(state, desired.get(state.info.family, {}), keep_entries, ports, growth_cap)
        infos[state.prefix_list_id] = replace(state.info, max_entries=item.max_entries_after)
        list_plans.append(item)
    listed = {cidr for item in list_plans for cidr in (*item.state.cidrs, *(e.cidr for e in item.added))} - {
        cidr for item in list_plans for cidr in item.removed
    }
    plans = [
        (_references_that_fit(plan, rules, quota), rules)
        for plan, rules in _plan_groups(cluster, ports, lists, groups, infos, listed, wanted, keep_rules)
    ]
    scheduled = schedule(plans, quota)
    reviews = tuple(
        GroupReview.of(plan, rules, scheduled.peaks[plan.group_id], quota) for plan, rules in plans
    )
    return TargetPlan(tuple(list_plans), reviews, scheduled.steps, quota)


def _plan_list(
    state: PrefixListState,
    entries: Mapping[str, PrefixListEntry],
    keep: Collection[str],
    ports: Sequence[PortSpec],
    growth_cap: Callable[[PrefixListState, Collection[str]], int],
) -> ListPlan:
    """One list's plan: it keeps its wanted (and kept) entries, gains the others lowest address first,
    grows (with headroom, up to `growth_cap`) only when they would not fit, and the rest wait."""
    staying = {entry.cidr: entry for entry in state.entries if entry.cidr in entries or entry.cidr in keep}
    additions = [entries[cidr] for cidr in sorted(entries.keys() - staying.keys(), key=address_order)]
    needed = len(staying) + len(additions)
    grow_to = None
    if needed > state.info.max_entries:
        cap = growth_cap(state, set(state.cidrs) | {entry.cidr for entry in additions})
        grown = min(with_headroom(needed), max(state.info.max_entries, min(cap, LIST_ENTRIES_LIMIT)))
        grow_to = grown if grown > state.info.max_entries else None
    admitted = additions[: max(0, (grow_to or state.info.max_entries) - len(staying))]
    final = {**staying, **{entry.cidr: entry for entry in admitted}}
    traffic = Traffic.for_specs(ports, state.info.family)
    waiting = tuple(additions[len(admitted) :])
    return ListPlan(state, grow_to, entry_batches(state.cidrs, final), traffic, waiting)


def _references_that_fit(plan: Plan, rules: Sequence[InboundRule], quota: int) -> Plan:
    """The group's references that fit once its plan is applied; where a list's references wait, the
    per-address rules they would have replaced stay (they still admit those members)."""
    fitted = fit(plan, rules, quota)
    # A reference weighs in its list's family alone.
    waiting_families = {family for rule in fitted.waiting for family in rule.weight}
    if not waiting_families:
        return fitted
    staying = {
        rule.rule_id
        for rule in fitted.replaced
        if rule.permission and rule.permission.family in waiting_families
    }
    return replace(
        fitted,
        revoke=tuple(rule for rule in fitted.revoke if rule.rule_id not in staying),
        replaced=tuple(rule for rule in fitted.replaced if rule.rule_id not in staying),
    )


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
    listed: Collection[str],
    wanted: Collection[str],
    keep: Collection[str],
) -> list[tuple[Plan, tuple[InboundRule, ...]]]:
    """Each group's plan beside the rules it holds, every reference weighed as `infos` describe its list."""
    references = desired_references(cluster, ports, [infos[state.prefix_list_id] for state in lists])
    plans = []
    for group_id, rules in groups.items():
        weighed = weigh_references(rules, infos)
        plan = plan_group_references(
            group_id, cluster, references, weighed, listed=listed, wanted=wanted, keep=keep
        )
        plans.append((plan, weighed))
    return plans


def _growth_cap(info: PrefixListInfo, plans: Sequence[tuple[Plan, Sequence[InboundRule]]], quota: int) -> int:
    """The largest MaxEntries every group referencing the list can hold within the quota once its plan
    is applied (the references it gains in, the rules they replace and its removals out)."""
    cap = LIST_ENTRIES_LIMIT
    for plan, rules in plans:
        revoked = {rule.rule_id for rule in plan.revoke}
        held: list[InboundRule | DesiredRule] = [
            *(r for r in rules if r.rule_id not in revoked),
            *plan.authorize,
        ]
        referencing = [rule for rule in held if _references(rule, info.prefix_list_id)]
        if referencing:
            others = Weight.total(rule for rule in held if not _references(rule, info.prefix_list_id))
            cap = min(cap, (quota - others[info.family]) // len(referencing))
    return cap


def _references(rule: InboundRule | DesiredRule, prefix_list_id: str) -> bool:
    return rule.reference is not None and rule.reference.prefix_list_id == prefix_list_id
