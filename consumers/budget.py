"""Pure: the rule budget's one rule, for every target: removals always go, and the additions that would
pass the quota wait, as many whole addresses (or lists) going in as fit, lowest address first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from ipaddress import ip_network

from consumers.reconcile import Plan
from schemas.errors import RuleQuotaExceededError
from schemas.quota import Family, Weight
from schemas.rules import DesiredRule, InboundRule, Permission


def unit(rule: DesiredRule) -> str:
    """What goes in whole: an address (all its port rules), or a prefix list (all its references).

    Spelled so that units sort in a stable order every consumer agrees on: addresses by family and
    value, lists by id.
    """
    allows = rule.allows
    if isinstance(allows, Permission):
        return address_order(allows.cidr)
    return f"list {allows.prefix_list_id}"


def address_order(cidr: str) -> str:
    """An address spelled to sort by family, then value: the order in which waiting addresses go in."""
    network = ip_network(cidr, strict=False)
    return f"address {network.version} {int(network.network_address):039d}/{network.prefixlen:03d}"


def fit(plan: Plan, existing: Sequence[InboundRule], quota: int) -> Plan:
    """The plan with only the additions the group can hold once it is applied; the rest wait.

    Every revoke stays (it only frees room). Additions go in whole units, in `unit` order, each if it
    still fits: a member is admitted on every port or on none, the ones admitted are the same in
    every region with the same room, and the same again on the next try, so nobody flaps.
    """
    room = plan.weight_after(existing) - Weight.total(plan.authorize)
    admitted: set[str] = set()
    for key, rules in sorted(_units(plan.authorize).items()):
        weight = Weight.total(rules)
        if room.fits(weight, quota):
            admitted.add(key)
            room += weight
    if len(admitted) == len(_units(plan.authorize)):
        return plan
    return replace(
        plan,
        authorize=tuple(rule for rule in plan.authorize if unit(rule) in admitted),
        waiting=plan.waiting + tuple(rule for rule in plan.authorize if unit(rule) not in admitted),
    )


def waiting_error(plan: Plan, after: Weight, quota: int) -> RuleQuotaExceededError | None:
    """What the plan's waiting additions would have needed: the group's rules of the first family they
    are in, had they gone in too (None when nothing waits)."""
    if not plan.waiting:
        return None
    family = min(_family(rule) for rule in plan.waiting)
    needed = (after + Weight.total(plan.waiting))[family]
    return RuleQuotaExceededError(plan.group_id, family.value, needed, quota)


def _units(rules: Iterable[DesiredRule]) -> dict[str, list[DesiredRule]]:
    units: dict[str, list[DesiredRule]] = {}
    for rule in rules:
        units.setdefault(unit(rule), []).append(rule)
    return units


def _family(rule: DesiredRule) -> Family:
    return min(rule.weight, default=Family.IPV4)
