"""Pure: desired rules from the stored memberships, and the plan that makes a group match them."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from consumers.attribution import describe_member, marker
from schemas.events import Member, MembershipSnapshot
from schemas.quota import FAMILIES, Family, Weight
from schemas.rules import DesiredRule, InboundRule, Permission, Traffic
from schemas.settings import AddressMode, PortSpec


def is_marked(rule: InboundRule, cluster: str) -> bool:
    """sgmesh's rules carry the cluster's marker as the first word of their description."""
    return rule.description.split(" ", 1)[0] == marker(cluster)


def is_managed(rule: InboundRule, cluster: str) -> bool:
    """The rules this planner manages: marked ones from an address (references are the prefix-list
    target's)."""
    return rule.permission is not None and is_marked(rule, cluster)


def member_addresses(member: Member, mode: AddressMode) -> tuple[str, ...]:
    return mode.pick(member.public_ipv4, member.private_ipv4, member.ipv6)


def desired_rules(
    cluster: str, states: Iterable[MembershipSnapshot], ports: Iterable[PortSpec], mode: AddressMode
) -> dict[Permission, DesiredRule]:
    """(every port spec) x (every address the mode admits of every member of every source), keyed by
    what AWS deduplicates on; a typed ICMP spec skips the addresses of the other family."""
    port_specs = tuple(ports)
    traffic = {family: Traffic.for_specs(port_specs, family) for family in FAMILIES}
    desired: dict[Permission, DesiredRule] = {}
    for snapshot in sorted(states, key=lambda state: state.source.key):
        for member in snapshot.members:
            description = describe_member(cluster, snapshot.source, member.instance_id)
            for address in member_addresses(member, mode):
                weight = Weight.of_cidr(address)
                for allowed in traffic[Family.of(address)]:
                    permission = allowed.from_cidr(address)
                    desired.setdefault(permission, DesiredRule(permission, description, weight))
    return desired


@dataclass(frozen=True)
class Plan:
    """The changes one group needs; empty when it already matches.

    `replaced` are the revokes of rules that still admit members, by another shape (a prefix-list
    reference in place of per-address rules, or the other way round): they go once `authorize` is in,
    or right before it where the group cannot hold both. `waiting` are the additions the quota holds
    back (see consumers.budget): not in `authorize`, to be retried.
    """

    group_id: str
    authorize: tuple[DesiredRule, ...]
    revoke: tuple[InboundRule, ...]
    replaced: tuple[InboundRule, ...] = ()
    waiting: tuple[DesiredRule, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.authorize and not self.revoke

    @property
    def removals(self) -> tuple[InboundRule, ...]:
        """The revokes of rules that admit nobody wanted: they only free room, so they go first."""
        replaced = {rule.rule_id for rule in self.replaced}
        return tuple(rule for rule in self.revoke if rule.rule_id not in replaced)

    def weight_after(self, existing: Iterable[InboundRule]) -> Weight:
        """The group's inbound rules per family once the plan is applied to `existing`."""
        revoked = {rule.rule_id for rule in self.revoke}
        kept = (rule for rule in existing if rule.rule_id not in revoked)
        return Weight.total(kept) + Weight.total(self.authorize)


def plan_group(
    group_id: str,
    cluster: str,
    desired: Mapping[Permission, DesiredRule],
    existing: Iterable[InboundRule],
    keep: Collection[str] = frozenset(),
) -> Plan:
    """authorize(desired - present), revoke(managed - desired - keep); unmarked rules are never revoked.

    An operator's unmarked rule with the same permission already admits the member, so it counts as
    present: authorizing it again would only fail as a duplicate. `keep` are rule ids to leave in
    place although no snapshot wants them (consumers.attribution). A marked prefix-list reference, left
    by the prefix-list target, is replaced by the per-address rules.
    """
    existing_rules = tuple(existing)
    present = {rule.allows for rule in existing_rules}
    authorize = tuple(rule for permission, rule in sorted(desired.items()) if permission not in present)
    revoke = tuple(
        rule
        for rule in existing_rules
        if is_managed(rule, cluster) and rule.allows not in desired and rule.rule_id not in keep
    )
    replaced = tuple(
        rule for rule in existing_rules if rule.reference is not None and is_marked(rule, cluster)
    )
    return Plan(group_id, authorize, revoke + replaced, replaced)
