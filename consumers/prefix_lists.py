"""Pure: the prefix-list target's plan: entry changes per list, MaxEntries growth, referencing rules."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from consumers.reconcile import describe_rule, marker, member_addresses
from schemas.errors import RuleQuotaExceededError
from schemas.events import MembershipSnapshot
from schemas.prefix_lists import (
    EntryBatch,
    GroupRule,
    PrefixListConfigError,
    PrefixListEntry,
    PrefixListInfo,
    PrefixListState,
    Reference,
)
from schemas.rules import Family, Permission, family_of
from schemas.settings import AddressMode, PortSpec

# ModifyManagedPrefixList takes at most 100 AddEntries and 100 RemoveEntries per call.
CHANGES_PER_CALL = 100
# The most entries a customer-managed prefix list may have (its MaxEntries ceiling).
LIST_ENTRIES_LIMIT = 1000
# Growth adds room for this share of the members (at least MIN_HEADROOM) so that a scale-out does not
# resize the list every time: a resize is its own call and re-weighs every group that references it.
HEADROOM_SHARE = 0.1
MIN_HEADROOM = 10
# Any address of each family: what a port spec's rule looks like for a list of that family.
FAMILY_SAMPLES = {Family.IPV4: "192.0.2.1/32", Family.IPV6: "2001:db8::1/128"}


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
                desired.setdefault(family_of(address), {}).setdefault(address, entry)
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
    """One list's changes: an optional resize (its own call, first), then the entry batches."""

    state: PrefixListState
    grow_to: int | None
    batches: tuple[EntryBatch, ...]

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


@dataclass(frozen=True)
class DesiredReference:
    reference: Reference
    description: str


@dataclass(frozen=True)
class GroupChange:
    """One group's rule changes, and its weighted inbound rules per family as AWS counts the quota.

    References are authorized before anything is revoked, so `weight_peak` (existing rules plus the
    new references) is what the group must hold in between; `weight_after` is what it holds after.
    """

    group_id: str
    authorize: tuple[DesiredReference, ...]
    revoke: tuple[GroupRule, ...]
    weight_peak: dict[Family, int] = field(default_factory=dict)
    weight_after: dict[Family, int] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.authorize and not self.revoke


@dataclass(frozen=True)
class TargetPlan:
    lists: tuple[ListPlan, ...]
    groups: tuple[GroupChange, ...]
    quota: int

    @property
    def is_empty(self) -> bool:
        return all(plan.is_empty for plan in self.lists) and all(group.is_empty for group in self.groups)

    def check_quota(self) -> None:
        """Raise, naming the group, its weighted rule count and the quota, if any group would not fit."""
        for group in self.groups:
            for family, weight in sorted(group.weight_peak.items()):
                if weight > self.quota:
                    raise RuleQuotaExceededError(group.group_id, family.value, weight, self.quota)


def reference_description(cluster: str, family: Family) -> str:
    return f"{marker(cluster)} prefix-list {family.value}"


def desired_references(
    cluster: str, ports: Iterable[PortSpec], lists: Iterable[PrefixListInfo]
) -> dict[Reference, DesiredReference]:
    """One rule per port spec per list, each referencing the list."""
    desired: dict[Reference, DesiredReference] = {}
    for info in lists:
        for spec in ports:
            # A rule's protocol and ports depend on the family it admits (ICMP is icmpv6 for IPv6):
            # the list's family decides, as an address of that family would for a per-address rule.
            permission = Permission.for_spec(spec, FAMILY_SAMPLES[info.family])
            if permission is None:
                continue
            reference = Reference(
                permission.protocol, permission.from_port, permission.to_port, info.prefix_list_id
            )
            desired[reference] = DesiredReference(reference, reference_description(cluster, info.family))
    return desired


def is_managed_rule(rule: GroupRule, cluster: str) -> bool:
    return rule.description.split(" ", 1)[0] == marker(cluster)


def plan_group_references(
    group_id: str, cluster: str, desired: Mapping[Reference, DesiredReference], rules: Sequence[GroupRule]
) -> GroupChange:
    """authorize(desired - present); revoke every other managed rule, per-address rules included.

    A per-address rule left from the security-group target is revoked only after the references
    are in place (see GroupChange), so switching targets never drops a member. Unmarked rules are
    never touched, and an unmarked reference that already allows the same counts as present.
    """
    present = {rule.reference for rule in rules if rule.reference is not None}
    authorize = tuple(desired[ref] for ref in sorted(desired) if ref not in present)
    revoke = tuple(
        rule
        for rule in rules
        if is_managed_rule(rule, cluster)
        and (rule.cidr is not None or (rule.reference is not None and rule.reference not in desired))
    )
    return GroupChange(group_id, authorize, revoke)


def weigh(
    rules: Iterable[GroupRule], added: Iterable[Reference], infos: Mapping[str, PrefixListInfo]
) -> dict[Family, int]:
    """Inbound rules per family as AWS counts the quota: a prefix-list reference weighs its MaxEntries.

    A group reference, or a reference to a list that could not be described, has no known family or
    size: it counts once against both families (stricter for the first, a lower bound for the second).
    """
    counts: Counter[Family] = Counter()
    references = list(added)
    for rule in rules:
        if rule.cidr_family is not None:
            counts[rule.cidr_family] += 1
        elif rule.reference is not None:
            references.append(rule.reference)
        else:
            counts.update(Family)
    for reference in references:
        info = infos.get(reference.prefix_list_id)
        if info is None:
            counts.update(Family)
        else:
            counts[info.family] += info.max_entries
    return dict(counts)


def plan_target(
    *,
    cluster: str,
    ports: Sequence[PortSpec],
    quota: int,
    desired: DesiredEntries,
    lists: Sequence[PrefixListState],
    groups: Mapping[str, Sequence[GroupRule]],
    foreign: Mapping[str, PrefixListInfo],
) -> TargetPlan:
    """Everything the prefix-list target must change, with every group's weighted rule count.

    `foreign` describes the other lists the groups reference (an operator's), so that their weight
    counts too. A list grows (with headroom, capped by what every referencing group can still hold)
    only when the desired entries would not fit; it never shrinks on its own.
    """
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
    references = desired_references(cluster, ports, [state.info for state in lists])
    changes = [
        plan_group_references(group_id, cluster, references, rules) for group_id, rules in groups.items()
    ]
    infos = {**foreign, **{state.prefix_list_id: state.info for state in lists}}
    list_plans = []
    for state in lists:
        wanted = desired.get(state.info.family, {})
        needed = max(len(wanted), len(state.entries))
        grow_to = None
        if needed > state.info.max_entries:
            cap = _growth_cap(state.info, changes, groups, infos, quota)
            grow_to = max(needed, min(with_headroom(needed), cap))
            infos[state.prefix_list_id] = replace(state.info, max_entries=grow_to)
        list_plans.append(ListPlan(state, grow_to, entry_batches(state.cidrs, wanted)))
    weighed = tuple(_weighed(change, groups[change.group_id], infos) for change in changes)
    return TargetPlan(tuple(list_plans), weighed, quota)


def _weighed(
    change: GroupChange, rules: Sequence[GroupRule], infos: Mapping[str, PrefixListInfo]
) -> GroupChange:
    added = [desired.reference for desired in change.authorize]
    revoked = {rule.rule_id for rule in change.revoke}
    kept = [rule for rule in rules if rule.rule_id not in revoked]
    return replace(change, weight_peak=weigh(rules, added, infos), weight_after=weigh(kept, added, infos))


def _growth_cap(
    info: PrefixListInfo,
    changes: Sequence[GroupChange],
    groups: Mapping[str, Sequence[GroupRule]],
    infos: Mapping[str, PrefixListInfo],
    quota: int,
) -> int:
    """The largest MaxEntries every group referencing the list can hold within the quota."""
    cap = LIST_ENTRIES_LIMIT
    without = {**infos, info.prefix_list_id: replace(info, max_entries=0)}
    for change in changes:
        rules = groups[change.group_id]
        added = [desired.reference for desired in change.authorize]
        references = [rule.reference for rule in rules if rule.reference is not None] + added
        count = sum(1 for reference in references if reference.prefix_list_id == info.prefix_list_id)
        if count:
            others = weigh(rules, added, without).get(info.family, 0)
            cap = min(cap, (quota - others) // count)
    return cap
