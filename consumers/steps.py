"""Pure: the groups' plans as calls, in an order where no member is absent from every group, and
where no group passes its quota at any step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from consumers.reconcile import Plan
from schemas.quota import FAMILIES, Weight
from schemas.rules import Allows, DesiredRule, InboundRule, Permission


@dataclass(frozen=True)
class Move:
    """A wanted rule that leaves its group for `home`, which does not hold it yet."""

    rule: InboundRule
    home: str


@dataclass(frozen=True)
class Schedule:
    """The calls, in order (each a revoke or an authorize), and each group's most rules at any step."""

    steps: tuple[Plan, ...]
    peaks: Mapping[str, Weight]


def schedule(
    plans: Sequence[tuple[Plan, Sequence[InboundRule]]],
    quota: int,
    *,
    homes: Mapping[str, str] | None = None,
    desired: Mapping[Permission, DesiredRule] | None = None,
) -> Schedule:
    """Order every group's plan (fitted to the quota: see consumers.budget) into calls.

    `homes` and `desired` are the sharded target's: where each wanted address now lives, so that a
    rule revoked from one group because it lives in another is revoked only once it has landed there.
    """
    return _StepSchedule(plans, quota, homes or {}, desired or {}).run()


class _StepSchedule:
    """Removals (revokes nobody needs) go first: they make room. Then, in rounds: every group's
    authorize that fits now (or, where the whole does not fit, the rules other groups are waiting to
    see land: they unblock those groups' revokes), every moving rule's revoke once its new group holds
    it, and a group's replaced rules once its authorize is in. Usually that is one round; a group that
    must lose a moving rule before it has room for its own authorize waits one more.

    Only full groups each waiting for another to make room stall the rounds, where no order avoids a
    gap: then a group's replaced rules go first (its authorize then admits the same members), or else
    the moving rules of the group with the fewest, so that its authorize fits and the others follow
    within the same reconcile.
    """

    def __init__(
        self,
        plans: Sequence[tuple[Plan, Sequence[InboundRule]]],
        quota: int,
        homes: Mapping[str, str],
        desired: Mapping[Permission, DesiredRule],
    ) -> None:
        self._quota = quota
        # What each group holds as the calls go: what its rules allow, and their weight.
        self._held = {plan.group_id: {rule.allows for rule in existing} for plan, existing in plans}
        self._weight = {plan.group_id: Weight.total(existing) for plan, existing in plans}
        self._peaks = dict(self._weight)
        self._steps: list[Plan] = []
        self._waiting: dict[str, tuple[DesiredRule, ...]] = {}
        self._moving: dict[str, list[Move]] = {}
        self._replaced: dict[str, tuple[InboundRule, ...]] = {}
        for plan, _existing in plans:
            staying, moves = _split_removals(plan, homes, desired, self._held)
            if staying:
                self._revoke(plan.group_id, staying)
            if moves:
                self._moving[plan.group_id] = moves
            if plan.replaced:
                self._replaced[plan.group_id] = plan.replaced
            if plan.authorize:
                self._waiting[plan.group_id] = plan.authorize

    def run(self) -> Schedule:
        while self._waiting or self._moving or self._replaced:
            authorized = self._authorize_what_fits()
            revoked = self._revoke_moves_landed() | self._revoke_replaced()
            if not (authorized or revoked):
                self._break_stall()
        return Schedule(tuple(self._steps), self._peaks)

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

    def _revoke_replaced(self) -> bool:
        """A group's replaced rules go once its own authorize is in: it admits the same members."""
        done = [group_id for group_id in self._replaced if group_id not in self._waiting]
        for group_id in done:
            self._revoke(group_id, self._replaced.pop(group_id))
        return bool(done)

    def _break_stall(self) -> None:
        """Nothing could go this round: every group that waits is full, waiting for another's room.

        A group's replaced rules go first: once they are gone its whole authorize fits (the planner
        fitted it to the group without them). Else, a group in the cycle has rules waiting and rules
        moving out: revoking its moving rules leaves it only what it keeps, so its whole authorize fits
        next round and the others follow. The group with the fewest moving rules goes: the fewest
        addresses are briefly in no group.
        """
        if self._replaced:
            group_id = min(self._replaced)
            self._revoke(group_id, self._replaced.pop(group_id))
            return
        stuck = [group_id for group_id in self._moving if group_id in self._waiting] or list(self._moving)
        if not stuck:
            raise ValueError(
                f"authorizations that can never fit a quota of {self._quota}: {sorted(self._waiting)} "
                "(plans must be fitted first: consumers.budget.fit)"
            )
        first = min(stuck, key=lambda group_id: (len(self._moving[group_id]), group_id))
        self._revoke(first, [move.rule for move in self._moving.pop(first)])

    def _fits(self, group_id: str, rules: Sequence[DesiredRule]) -> bool:
        return self._weight[group_id].fits(Weight.total(rules), self._quota)

    def _revoke(self, group_id: str, rules: Sequence[InboundRule]) -> None:
        self._steps.append(Plan(group_id, (), tuple(rules)))
        self._weight[group_id] -= Weight.total(rules)
        # A rule revoked no longer admits anything here: a move waiting for it to land must not think so.
        self._held[group_id] -= {rule.allows for rule in rules}

    def _authorize(self, group_id: str, rules: tuple[DesiredRule, ...]) -> None:
        self._steps.append(Plan(group_id, rules, ()))
        self._weight[group_id] += Weight.total(rules)
        self._held[group_id].update(rule.allows for rule in rules)
        peak, now = self._peaks[group_id], self._weight[group_id]
        self._peaks[group_id] = Weight({family: max(peak[family], now[family]) for family in FAMILIES})


def _split_removals(
    plan: Plan,
    homes: Mapping[str, str],
    desired: Mapping[Permission, DesiredRule],
    held: Mapping[str, set[Allows]],
) -> tuple[list[InboundRule], list[Move]]:
    """The plan's revokes nobody needs, and the moves: wanted rules their new home does not hold yet."""
    staying: list[InboundRule] = []
    moves: list[Move] = []
    for rule in plan.removals:
        permission = rule.permission
        home = homes.get(permission.cidr) if permission is not None else None
        if permission in desired and home is not None and permission not in held[home]:
            moves.append(Move(rule, home))
        else:
            staying.append(rule)
    return staying, moves
