"""Pure: spread the desired rules over shard groups, one group per address, sticky, by rendezvous hash."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from hashlib import blake2b

from consumers.attribution import SourceFacts
from consumers.budget import fit
from consumers.errors import ShardsFullError
from consumers.reconcile import Plan, is_marked, plan_group
from consumers.review import GroupReview, Review, least_headroom
from consumers.steps import schedule
from schemas.errors import RuleQuotaExceededError
from schemas.quota import Family, Weight
from schemas.rules import DesiredRule, InboundRule, Permission


@dataclass(frozen=True)
class Shard:
    """A managed group, in settings order, with the inbound rules it holds now."""

    group_id: str
    existing: tuple[InboundRule, ...]


@dataclass(frozen=True)
class Placement:
    """Which group each address lives in, and so each group's share of the desired rules.

    `unplaced` are the addresses no group has room for: they are in no share, and wait.
    """

    group_ids: tuple[str, ...]
    homes: Mapping[str, str]
    shares: Mapping[str, Mapping[Permission, DesiredRule]]
    unplaced: tuple[str, ...]
    needed: Mapping[Family, int]
    room: Mapping[Family, int]
    quota: int

    def quota_error(self) -> ShardsFullError | None:
        """What the addresses that wait would have needed (None when every address has a home)."""
        if not self.unplaced:
            return None
        family = min(Family.of(cidr) for cidr in self.unplaced)
        unplaced = [cidr for cidr in self.unplaced if Family.of(cidr) is family]
        return ShardsFullError(
            self.group_ids, family.value, self.needed[family], self.room[family], self.quota, unplaced
        )


@dataclass(frozen=True)
class GroupPlans:
    """Every managed group's plan, with the rules it holds now, and the calls that apply them, in order
    (consumers.steps), with each group's most rules at any step."""

    plans: tuple[tuple[Plan, tuple[InboundRule, ...]], ...]
    steps: tuple[Plan, ...]
    peaks: Mapping[str, Weight]
    quota: int
    placement: Placement | None = None
    # Wanted rules revoked from one group because they now live in another (sharded moves).
    moved: frozenset[Permission] = frozenset()
    # What the target learned of the sources, recorded once the steps are done (consumers.sources).
    sources: SourceFacts = field(default_factory=SourceFacts)

    def quota_error(self) -> RuleQuotaExceededError | None:
        """Why additions wait, if some do: the shards' room, else the first group's quota."""
        shards = self.placement.quota_error() if self.placement is not None else None
        errors = (group.quota_error() for group in self._groups())
        return shards or next((error for error in errors if error is not None), None)

    def review(self) -> Review:
        groups = self._groups()
        return Review(
            groups,
            headroom=least_headroom(groups, self.quota),
            sources=self.sources.counted,
            oldest_heard=self.sources.oldest_heard,
        )

    def _groups(self) -> tuple[GroupReview, ...]:
        return tuple(
            GroupReview.of(plan, existing, self.peaks[plan.group_id], self.quota)
            for plan, existing in self.plans
        )


def score(group_id: str, cidr: str) -> int:
    """The rendezvous weight of an address for a group: stable across processes and releases."""
    digest = blake2b(f"{group_id} {cidr}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def place(
    cluster: str,
    desired: Mapping[Permission, DesiredRule],
    shards: Sequence[Shard],
    quota: int,
    keep: Collection[str] = frozenset(),
) -> Placement:
    """Give every desired address one home group, within each group's room per address family.

    An address stays where its rules are (sticky) unless that group is over its room; then the
    addresses that hash lowest for it leave first. Addresses without a home go, in address order, to
    the group that hashes highest for them among those with room; one that fits nowhere is unplaced
    (it waits, and the rules it has stay where they are: see plan_shards). All rules
    of an address share one group, so a move is whole, and every address needs the same number of
    rules (one per port spec), so this greedy fill fits whenever the room, counted in whole addresses,
    allows. `keep` are the ids of managed rules kept although no snapshot wants them: they take room.
    """
    group_ids = tuple(shard.group_id for shard in shards)
    by_address: dict[str, dict[Permission, DesiredRule]] = {}
    for permission, rule in desired.items():
        by_address.setdefault(permission.cidr, {})[permission] = rule
    weights = {cidr: Weight.total(rules.values()) for cidr, rules in by_address.items()}
    room = {shard.group_id: _room(shard, cluster, quota, keep) for shard in shards}
    load = dict.fromkeys(group_ids, Weight())
    homes = _sticky_homes(by_address, shards)
    for group_id in sorted(group_ids):
        for family in Family:
            residents = sorted(
                (cidr for cidr, home in homes.items() if home == group_id and Family.of(cidr) is family),
                key=lambda cidr: (score(group_id, cidr), cidr),
            )
            load[group_id] += sum((weights[cidr] for cidr in residents), Weight())
            while load[group_id][family] > room[group_id][family]:
                evicted = residents.pop(0)
                del homes[evicted]
                load[group_id] -= weights[evicted]
    unplaced: list[str] = []
    for cidr in sorted(by_address.keys() - homes.keys()):
        family = Family.of(cidr)
        ranked = sorted(group_ids, key=lambda group_id: (score(group_id, cidr), group_id), reverse=True)
        home = next((g for g in ranked if (load[g] + weights[cidr])[family] <= room[g][family]), None)
        if home is None:
            unplaced.append(cidr)
            continue
        homes[cidr] = home
        load[home] += weights[cidr]
    shares: dict[str, dict[Permission, DesiredRule]] = {group_id: {} for group_id in group_ids}
    for cidr, home in homes.items():
        shares[home].update(by_address[cidr])
    total_room = {family: sum(room[g][family] for g in group_ids) for family in Family}
    return Placement(
        group_ids, homes, shares, tuple(unplaced), Weight.total(desired.values()), total_room, quota
    )


def plan_every_group(
    cluster: str,
    desired: Mapping[Permission, DesiredRule],
    shards: Sequence[Shard],
    quota: int,
    keep: Collection[str] = frozenset(),
) -> GroupPlans:
    """`security-group` mode: every group gets every desired rule (as many whole addresses as fit)."""
    plans = tuple(
        (fit(plan_group(s.group_id, cluster, desired, s.existing, keep), s.existing, quota), s.existing)
        for s in shards
    )
    scheduled = schedule(plans, quota)
    return GroupPlans(plans, scheduled.steps, scheduled.peaks, quota)


def plan_shards(
    cluster: str,
    desired: Mapping[Permission, DesiredRule],
    shards: Sequence[Shard],
    quota: int,
    keep: Collection[str] = frozenset(),
) -> GroupPlans:
    """`sharded` mode: each group's plan against its share, in an order that never drops a member."""
    placement = place(cluster, desired, shards, quota, keep)
    planned = [
        plan_group(s.group_id, cluster, placement.shares[s.group_id], s.existing, keep) for s in shards
    ]
    # A wanted rule goes from a group only to land in another: the rules of an unplaced address, and
    # those of an addition the quota holds back, stay where they are. Keeping them may leave less room
    # for other additions, which then wait too, until nothing changes.
    stuck = {rule for cidr in placement.unplaced for rule in desired if rule.cidr == cidr}
    while True:
        plans = tuple(
            (fit(replace(plan, revoke=_unstuck(plan.revoke, stuck)), shard.existing, quota), shard.existing)
            for plan, shard in zip(planned, shards, strict=True)
        )
        waiting = {
            p for plan, _existing in plans for rule in plan.waiting if (p := rule.permission) is not None
        }
        if waiting <= stuck:
            break
        stuck |= waiting
    moved = frozenset(
        rule.permission
        for plan, _existing in plans
        for rule in plan.revoke
        if rule.permission is not None and rule.permission in desired
    )
    scheduled = schedule(plans, quota, homes=placement.homes, desired=desired)
    return GroupPlans(
        _show_unplaced(plans, placement, desired), scheduled.steps, scheduled.peaks, quota, placement, moved
    )


def _unstuck(revoke: Sequence[InboundRule], stuck: Collection[Permission]) -> tuple[InboundRule, ...]:
    return tuple(rule for rule in revoke if rule.permission not in stuck)


def _show_unplaced(
    plans: Sequence[tuple[Plan, tuple[InboundRule, ...]]],
    placement: Placement,
    desired: Mapping[Permission, DesiredRule],
) -> tuple[tuple[Plan, tuple[InboundRule, ...]], ...]:
    """The plans with each address no group has room for waiting in its first-choice group, so that
    the group's review (`sgmesh plan`) shows it."""
    waiting: dict[str, list[DesiredRule]] = {}
    for cidr in placement.unplaced:
        first = max(placement.group_ids, key=lambda group_id: (score(group_id, cidr), group_id))
        waiting.setdefault(first, []).extend(rule for p, rule in sorted(desired.items()) if p.cidr == cidr)
    return tuple(
        (replace(plan, waiting=plan.waiting + tuple(waiting.get(plan.group_id, ()))), existing)
        for plan, existing in plans
    )


def _sticky_homes(
    by_address: Mapping[str, Mapping[Permission, DesiredRule]], shards: Iterable[Shard]
) -> dict[str, str]:
    """Each desired address's current group: where most of its desired rules are present now.

    Present counts any rule, as `plan_group` does: an operator's rule admitting the member already
    holds it there. An address held in several groups (a move cut short, or a switch from
    `security-group` mode) keeps the group with the most, ties going to the highest rendezvous weight.
    """
    held: dict[str, Counter[str]] = {}
    for shard in shards:
        for rule in shard.existing:
            permission = rule.permission
            if permission is not None and permission in by_address.get(permission.cidr, {}):
                held.setdefault(permission.cidr, Counter())[shard.group_id] += 1
    return {
        cidr: max(groups, key=lambda group_id: (groups[group_id], score(group_id, cidr), group_id))
        for cidr, groups in held.items()
    }


def _room(shard: Shard, cluster: str, quota: int, keep: Collection[str]) -> dict[Family, int]:
    """The quota per family, less the rules that stay whatever the placement: the ones sgmesh does not
    manage, and the managed ones kept for a source not heard from yet."""
    staying = Weight.total(
        rule for rule in shard.existing if not is_marked(rule, cluster) or rule.rule_id in keep
    )
    return {family: max(0, left) for family, left in staying.headroom(quota).items()}
