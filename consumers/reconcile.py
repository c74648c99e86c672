"""Pure: desired rules from the stored memberships, and the plan that makes a group match them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.events import Member, MembershipSnapshot
from schemas.quota import FAMILIES, Family, Weight
from schemas.rules import DesiredRule, InboundRule, Permission, Traffic
from schemas.settings import AddressMode, PortSpec

MARKER_PREFIX = "sgmesh:"
DESCRIPTION_LIMIT = 255
# Characters AWS accepts in a rule description; anything else in a group name is replaced.
DESCRIPTION_FORBIDDEN = re.compile(r"[^a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]")


def marker(cluster: str) -> str:
    return f"{MARKER_PREFIX}{cluster}"


def is_marked(rule: InboundRule, cluster: str) -> bool:
    """sgmesh's rules carry the cluster's marker as the first word of their description."""
    return rule.description.split(" ", 1)[0] == marker(cluster)


def is_managed(rule: InboundRule, cluster: str) -> bool:
    """The rules this planner manages: marked ones from an address (references are the prefix-list
    target's)."""
    return rule.permission is not None and is_marked(rule, cluster)


def member_addresses(member: Member, mode: AddressMode) -> tuple[str, ...]:
    return mode.pick(member.public_ipv4, member.private_ipv4, member.ipv6)


def describe_rule(cluster: str, snapshot: MembershipSnapshot, member: Member) -> str:
    source = snapshot.source
    text = f"{marker(cluster)} {source.region}/{source.group}/{member.instance_id}"
    return DESCRIPTION_FORBIDDEN.sub("_", text)[:DESCRIPTION_LIMIT]


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
            description = describe_rule(cluster, snapshot, member)
            for address in member_addresses(member, mode):
                weight = Weight.of_cidr(address)
                for allowed in traffic[Family.of(address)]:
                    permission = allowed.from_cidr(address)
                    desired.setdefault(permission, DesiredRule(permission, description, weight))
    return desired


@dataclass(frozen=True)
class Plan:
    """The changes one group needs; empty when it already matches."""

    group_id: str
    authorize: tuple[DesiredRule, ...]
    revoke: tuple[InboundRule, ...]

    @property
    def is_empty(self) -> bool:
        return not self.authorize and not self.revoke

    def weight_after(self, existing: Iterable[InboundRule]) -> Weight:
        """The group's inbound rules per family once the plan is applied to `existing`."""
        revoked = {rule.rule_id for rule in self.revoke}
        kept = (rule for rule in existing if rule.rule_id not in revoked)
        return Weight.total(kept) + Weight.total(self.authorize)


def plan_group(
    group_id: str, cluster: str, desired: Mapping[Permission, DesiredRule], existing: Iterable[InboundRule]
) -> Plan:
    """authorize(desired - present), revoke(managed - desired); unmarked rules are never revoked.

    An operator's unmarked rule with the same permission already admits the member, so it counts as
    present: authorizing it again would only fail as a duplicate.
    """
    existing_rules = tuple(existing)
    present = {rule.allows for rule in existing_rules}
    authorize = tuple(rule for permission, rule in sorted(desired.items()) if permission not in present)
    revoke = tuple(
        rule for rule in existing_rules if is_managed(rule, cluster) and rule.allows not in desired
    )
    return Plan(group_id, authorize, revoke)
