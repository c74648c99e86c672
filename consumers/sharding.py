"""Pure: spread the desired rules over shard groups, one group per address, sticky, by rendezvous hash."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b

from consumers.reconcile import Plan, check_quota, is_managed, plan_group, rules_after
from schemas.errors import RuleQuotaExceededError
from schemas.rules import DesiredRule, ExistingRule, Family, Permission


class ShardsFullError(RuleQuotaExceededError):
    """The desired rules do not fit in the shard groups together; nothing was changed."""

    def __init__(
        self,
        group_ids: Sequence[str],
        family: str,
        rules_needed: int,
        room: int,
        quota: int,
        unplaced: Sequence[str],
    ) -> None:
        super().__init__(", ".join(group_ids), family, rules_needed, room)
        self.group_ids = tuple(group_ids)
        self.unplaced = tuple(unplaced)
        # The base message speaks of one group and its quota; a shard set has a combined room instead.
        self.args = (
            f"sharded security groups {', '.join(group_ids)} would need {rules_needed} {family} "
            f"inbound rules (each address with all its rules in one group) and have room for {room} "
            f"(a quota of {quota} per group, less the rules sgmesh does not manage): {len(unplaced)} "
            f"address(es) fit in no group, first {unplaced[0]}; nothing was changed",
        )


@dataclass(frozen=True)
class Shard:
    """A managed group, in settings order, with the inbound rules it holds now."""

    group_id: str
    existing: tuple[ExistingRule, ...]


@dataclass(frozen=True)
class Placement:
    """Which group each address lives in, and so each group's share of the desired rules.

    An address no group has room for is still put in its first-choice group's share, so that the
    group's plan shows the overflow; `check` refuses such a placement before anything is written.
    """

    group_ids: tuple[str, ...]
    homes: Mapping[str, str]
    shares: Mapping[str, Mapping[Permission, DesiredRule]]
    unplaced: tuple[str, ...]
    needed: Mapping[Family, int]
    room: Mapping[Family, int]
    quota: int

    def check(self) -> None:
        if not self.unplaced:
            return
        family = min(_family(cidr) for cidr in self.unplaced)
        unplaced = [cidr for cidr in self.unplaced if _family(cidr) is family]
        raise ShardsFullError(
            self.group_ids, family.value, self.needed[family], self.room[family], self.quota, unplaced
        )


@dataclass(frozen=True)
class GroupPlans:
    """Every managed group's plan, with the rules it holds now, and the calls that apply them, in order."""

    plans: tuple[tuple[Plan, tuple[ExistingRule, ...]], ...]
    steps: tuple[Plan, ...]
    placement: Placement | None = None
    # Wanted rules revoked from one group because they now live in another (sharded moves).
    moved: frozenset[Permission] = frozenset()

    def check(self, quota: int) -> None:
        """Raise before any write if the shards cannot hold the rules or a group would pass its quota."""
        if self.placement is not None:
            self.placement.check()
        for plan, existing in self.plans:
            check_quota(plan, existing, quota)


def score(group_id: str, cidr: str) -> int:
    """The rendezvous weight of an address for a group: stable across processes and releases."""
    digest = blake2b(f"{group_id} {cidr}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def place(
    cluster: str, desired: Mapping[Permission, DesiredRule], shards: Sequence[Shard], quota: int
) -> Placement:
    """Give every desired address one home group, within each group's room per address family.

    An address stays where its rules are (sticky) unless that group is over its room; then the
    addresses that hash lowest for it leave first. Addresses without a home go, in address order, to
    the group that hashes highest for them among those with room. All rules of an address share one
    group, so a move is whole, and every address needs the same number of rules (one per port spec),
    so this greedy fill fits whenever the room, counted in whole addresses, allows.
    """
    group_ids = tuple(shard.group_id for shard in shards)
    by_address: dict[str, dict[Permission, DesiredRule]] = {}
    for permission, rule in desired.items():
        by_address.setdefault(permission.cidr, {})[permission] = rule
    room = {shard.group_id: _room(shard, cluster, quota) for shard in shards}
    load: dict[str, Counter[Family]] = {group_id: Counter() for group_id in group_ids}
    homes = _sticky_homes(by_address, shards)
    for group_id in sorted(group_ids):
        for family in Family:
            residents = sorted(
                (cidr for cidr, home in homes.items() if home == group_id and _family(cidr) is family),
                key=lambda cidr: (score(group_id, cidr), cidr),
            )
            for cidr in residents:
                load[group_id][family] += len(by_address[cidr])
            while load[group_id][family] > room[group_id][family]:
                evicted = residents.pop(0)
                del homes[evicted]
                load[group_id][family] -= len(by_address[evicted])
    unplaced: list[str] = []
    for cidr in sorted(by_address.keys() - homes.keys()):
        family, weight = _family(cidr), len(by_address[cidr])
        ranked = sorted(group_ids, key=lambda group_id: (score(group_id, cidr), group_id), reverse=True)
        home = next((g for g in ranked if room[g][family] - load[g][family] >= weight), None)
        if home is None:
            unplaced.append(cidr)
            home = ranked[0]
        homes[cidr] = home
        load[home][family] += weight
    shares: dict[str, dict[Permission, DesiredRule]] = {group_id: {} for group_id in group_ids}
    for cidr, home in homes.items():
        shares[home].update(by_address[cidr])
    needed: Counter[Family] = Counter()
    for cidr, rules in by_address.items():
        needed[_family(cidr)] += len(rules)
    total_room = Counter({family: sum(room[g][family] for g in group_ids) for family in Family})
    return Placement(group_ids, homes, shares, tuple(unplaced), needed, total_room, quota)


def plan_every_group(
    cluster: str, desired: Mapping[Permission, DesiredRule], shards: Sequence[Shard]
) -> GroupPlans:
    """`security-group` mode: every group gets every desired rule, each group's plan in one step."""
    plans = tuple((plan_group(s.group_id, cluster, desired, s.existing), s.existing) for s in shards)
    return GroupPlans(plans, tuple(plan for plan, _existing in plans))


def plan_shards(
    cluster: str, desired: Mapping[Permission, DesiredRule], shards: Sequence[Shard], quota: int
) -> GroupPlans:
    """`sharded` mode: each group's plan against its share, in an order that never drops a member."""
    placement = place(cluster, desired, shards, quota)
    plans = tuple(
        (plan_group(s.group_id, cluster, placement.shares[s.group_id], s.existing), s.existing)
        for s in shards
    )
    moved = frozenset(
        rule.permission
        for plan, _existing in plans
        for rule in plan.revoke
        if rule.permission is not None and rule.permission in desired
    )
    return GroupPlans(plans, ordered_steps(placement, plans, desired), placement, moved)


def ordered_steps(
    placement: Placement,
    plans: Sequence[tuple[Plan, tuple[ExistingRule, ...]]],
    desired: Mapping[Permission, DesiredRule],
) -> tuple[Plan, ...]:
    """The plans as calls, in an order where no member is ever absent from every group.

    Revokes nobody needs go first: they make room. Then, in rounds: every authorize that fits now,
    and every moving rule's revoke once its new group holds it. Usually that is one round; a group
    that must lose a moving rule before it has room for its own authorize waits one more. Only a
    cycle of full groups swapping addresses stalls the rounds; then the moving rules are revoked
    first, a brief gap rather than a plan that can never apply.
    """
    held = {plan.group_id: {r.permission for r in existing if r.permission} for plan, existing in plans}
    counts = {plan.group_id: rules_after(Plan(plan.group_id, (), ()), existing) for plan, existing in plans}
    steps: list[Plan] = []
    waiting: dict[str, tuple[DesiredRule, ...]] = {}
    # Rules that leave their group for another one, with the group they go to.
    moving: dict[str, list[tuple[ExistingRule, str]]] = {}

    def revoke(group_id: str, rules: Sequence[ExistingRule]) -> None:
        steps.append(Plan(group_id, (), tuple(rules)))
        counts[group_id].subtract(family for rule in rules for family in _families(rule))

    def authorize(group_id: str, rules: tuple[DesiredRule, ...]) -> None:
        steps.append(Plan(group_id, rules, ()))
        counts[group_id].update(rule.permission.family for rule in rules)
        held[group_id].update(rule.permission for rule in rules)

    for plan, _existing in plans:
        now: list[ExistingRule] = []
        for rule in plan.revoke:
            permission = rule.permission
            home = placement.homes.get(permission.cidr) if permission is not None else None
            if permission in desired and home is not None and permission not in held[home]:
                moving.setdefault(plan.group_id, []).append((rule, home))
            else:
                now.append(rule)
        if now:
            revoke(plan.group_id, now)
        if plan.authorize:
            waiting[plan.group_id] = plan.authorize
    while waiting or moving:
        progressed = False
        for group_id, rules in list(waiting.items()):
            added = Counter(rule.permission.family for rule in rules)
            if all(counts[group_id][family] + n <= placement.quota for family, n in added.items()):
                authorize(group_id, waiting.pop(group_id))
                progressed = True
        for group_id, leaving in list(moving.items()):
            arrived = [(rule, home) for rule, home in leaving if rule.permission in held[home]]
            if arrived:
                revoke(group_id, [rule for rule, _home in arrived])
                moving[group_id] = [pair for pair in leaving if pair not in arrived]
                progressed = True
            if not moving[group_id]:
                del moving[group_id]
        if progressed:
            continue
        if moving:
            for group_id, leaving in moving.items():
                revoke(group_id, [rule for rule, _home in leaving])
            moving.clear()
        else:
            # Only a plan over the quota gets here, and `GroupPlans.check` refuses those first.
            for group_id, rules in waiting.items():
                authorize(group_id, rules)
            waiting.clear()
    return tuple(steps)


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


def _room(shard: Shard, cluster: str, quota: int) -> Counter[Family]:
    """The quota per family, less the rules sgmesh does not manage (references count in both families)."""
    unmanaged = rules_after(
        Plan(shard.group_id, (), ()), (rule for rule in shard.existing if not is_managed(rule, cluster))
    )
    return Counter({family: max(0, quota - unmanaged[family]) for family in Family})


def _families(rule: ExistingRule) -> tuple[Family, ...]:
    return (rule.permission.family,) if rule.permission is not None else tuple(Family)


def _family(cidr: str) -> Family:
    return Family.IPV6 if ":" in cidr else Family.IPV4
