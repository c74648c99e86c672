"""Pure: spread the desired rules over shard groups, one group per address, sticky, by rendezvous hash."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b

from consumers.errors import ShardsFullError
from consumers.reconcile import Plan, is_managed, plan_group
from consumers.review import GroupReview, Review, least_headroom
from schemas.quota import Family, Weight
from schemas.rules import Allows, DesiredRule, InboundRule, Permission


@dataclass(frozen=True)
class Shard:
    """A managed group, in settings order, with the inbound rules it holds now."""

    group_id: str
    existing: tuple[InboundRule, ...]


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
        family = min(Family.of(cidr) for cidr in self.unplaced)
        unplaced = [cidr for cidr in self.unplaced if Family.of(cidr) is family]
        raise ShardsFullError(
            self.group_ids, family.value, self.needed[family], self.room[family], self.quota, unplaced
        )


@dataclass(frozen=True)
class GroupPlans:
    """Every managed group's plan, with the rules it holds now, and the calls that apply them, in order.

    Each group's plan is applied revokes first, so a group holds the most once its plan is done.
    """

    plans: tuple[tuple[Plan, tuple[InboundRule, ...]], ...]
    steps: tuple[Plan, ...]
    quota: int
    placement: Placement | None = None
    # Wanted rules revoked from one group because they now live in another (sharded moves).
    moved: frozenset[Permission] = frozenset()

    def check(self) -> None:
        """Raise before any write if the shards cannot hold the rules or a group would pass its quota."""
        if self.placement is not None:
            self.placement.check()
        for group in self._groups():
            group.check()

    def review(self) -> Review:
        groups = self._groups()
        return Review(groups, headroom=least_headroom(groups, self.quota))

    def _groups(self) -> tuple[GroupReview, ...]:
        return tuple(GroupReview.revoking_first(plan, existing, self.quota) for plan, existing in self.plans)


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
    weights = {cidr: Weight.total(rules.values()) for cidr, rules in by_address.items()}
    room = {shard.group_id: _room(shard, cluster, quota) for shard in shards}
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
            home = ranked[0]
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
    cluster: str, desired: Mapping[Permission, DesiredRule], shards: Sequence[Shard], quota: int
) -> GroupPlans:
    """`security-group` mode: every group gets every desired rule, each group's plan in one step."""
    plans = tuple((plan_group(s.group_id, cluster, desired, s.existing), s.existing) for s in shards)
    return GroupPlans(plans, tuple(plan for plan, _existing in plans), quota)


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
    return GroupPlans(plans, ordered_steps(placement, plans, desired), quota, placement, moved)


def ordered_steps(
    placement: Placement,
    plans: Sequence[tuple[Plan, tuple[InboundRule, ...]]],
    desired: Mapping[Permission, DesiredRule],
) -> tuple[Plan, ...]:
    """The plans as calls, in an order where no member is ever absent from every group."""
    return StepSchedule(placement, plans, desired).run()


@dataclass(frozen=True)
class Move:
    """A wanted rule that leaves its group for `home`, which does not hold it yet."""

    rule: InboundRule
    home: str


class StepSchedule:
    """Orders the groups' plans into calls so that no member is ever absent from every group.

    Revokes nobody needs go first: they make room. Then, in rounds: every group's authorize that fits
    now (or, where the whole does not fit, the rules other groups are waiting to see land: they unblock
    those groups' revokes), and every moving rule's revoke once its new group holds it. Usually that is
    one round; a group that must lose a moving rule before it has room for its own authorize waits one
    more. Only a cycle of full groups swapping rules stalls the rounds, where no order avoids a gap;
    then one group's moving rules are revoked first (the group with the fewest), so that its authorize
    fits and the cycle unwinds within the same reconcile.
    """

    def __init__(
        self,
        placement: Placement,
        plans: Sequence[tuple[Plan, tuple[InboundRule, ...]]],
        desired: Mapping[Permission, DesiredRule],
    ) -> None:
        self._quota = placement.quota
        # What each group holds as the calls go: what its rules allow, and their weight.
        self._held = {plan.group_id: {rule.allows for rule in existing} for plan, existing in plans}
        self._weight = {plan.group_id: Weight.total(existing) for plan, existing in plans}
        self._steps: list[Plan] = []
        self._waiting: dict[str, tuple[DesiredRule, ...]] = {}
        self._moving: dict[str, list[Move]] = {}
        for plan, _existing in plans:
            staying, moves = _split_revokes(plan, placement.homes, desired, self._held)
            if staying:
                self._revoke(plan.group_id, staying)
            if moves:
                self._moving[plan.group_id] = moves
            if plan.authorize:
                self._waiting[plan.group_id] = plan.authorize

    def run(self) -> tuple[Plan, ...]:
        while self._waiting or self._moving:
            authorized = self._authorize_what_fits()
            revoked = self._revoke_moves_landed()
            if not (authorized or revoked):
                self._break_stall()
        return tuple(self._steps)

    def _authorize_what_fits(self) -> bool:
        authorized = False
        for group_id in sorted(self._waiting):
            rules = self._waiting[group_id]
            fitting = rules if self._fits(group_id, rules) else self._landings_that_fit(group_id, rules)
            if not fitting:
                continue
            self._authorize(group_id, fitting)
            left = tuple(rule for rule in rules if rule not in fitting)
            if left:
                self._waiting[group_id] = left
            else:
                del self._waiting[group_id]
            authorized = True
        return authorized

    def _landings_that_fit(self, group_id: str, rules: tuple[DesiredRule, ...]) -> tuple[DesiredRule, ...]:
        """The waiting rules that another group holds as a move to this one, as many as fit now."""
        landing = {
            move.rule.allows for moves in self._moving.values() for move in moves if move.home == group_id
        }
        fitting: list[DesiredRule] = []
        for rule in rules:
            if rule.allows in landing and self._fits(group_id, (*fitting, rule)):
                fitting.append(rule)
        return tuple(fitting)

    def _revoke_moves_landed(self) -> bool:
        landed_any = False
        for group_id, moves in list(self._moving.items()):
            landed = [move for move in moves if move.rule.allows in self._held[move.home]]
            if landed:
                self._revoke(group_id, [move.rule for move in landed])
                landed_any = True
            still = [move for move in moves if move.rule.allows not in self._held[move.home]]
            if still:
                self._moving[group_id] = still
            else:
                del self._moving[group_id]
        return landed_any

    def _break_stall(self) -> None:
        """Nothing could go this round: a cycle of full groups, each waiting for another to make room.

        A group in the cycle has rules waiting and rules moving out; revoking its moving rules leaves it
        only what it keeps, so its whole authorize fits next round and the others follow. The group with
        the fewest moving rules goes first: the fewest addresses are briefly in no group.
        """
        stuck = [group_id for group_id in self._moving if group_id in self._waiting] or list(self._moving)
        if not stuck:
            # Only a plan over the quota gets here, and `GroupPlans.check` refuses those first.
            for group_id, rules in self._waiting.items():
                self._authorize(group_id, rules)
            self._waiting.clear()
            return
        first = min(stuck, key=lambda group_id: (len(self._moving[group_id]), group_id))
        self._revoke(first, [move.rule for move in self._moving.pop(first)])

    def _fits(self, group_id: str, rules: Sequence[DesiredRule]) -> bool:
        return self._weight[group_id].fits(Weight.total(rules), self._quota)

    def _revoke(self, group_id: str, rules: Sequence[InboundRule]) -> None:
        self._steps.append(Plan(group_id, (), tuple(rules)))
        self._weight[group_id] -= Weight.total(rules)
        # A rule revoked no longer admits anything here: a move waiting for it to land must not think it has.
        self._held[group_id] -= {rule.allows for rule in rules}

    def _authorize(self, group_id: str, rules: tuple[DesiredRule, ...]) -> None:
        self._steps.append(Plan(group_id, rules, ()))
        self._weight[group_id] += Weight.total(rules)
        self._held[group_id].update(rule.allows for rule in rules)


def _split_revokes(
    plan: Plan,
    homes: Mapping[str, str],
    desired: Mapping[Permission, DesiredRule],
    held: Mapping[str, set[Allows]],
) -> tuple[list[InboundRule], list[Move]]:
    """The plan's revokes nobody needs, and the moves: wanted rules their new home does not hold yet."""
    staying: list[InboundRule] = []
    moves: list[Move] = []
    for rule in plan.revoke:
        permission = rule.permission
        home = homes.get(permission.cidr) if permission is not None else None
        if permission in desired and home is not None and permission not in held[home]:
            moves.append(Move(rule, home))
        else:
            staying.append(rule)
    return staying, moves


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


def _room(shard: Shard, cluster: str, quota: int) -> dict[Family, int]:
    """The quota per family, less the rules sgmesh does not manage."""
    unmanaged = Weight.total(rule for rule in shard.existing if not is_managed(rule, cluster))
    return {family: max(0, left) for family, left in unmanaged.headroom(quota).items()}
