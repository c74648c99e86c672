"""Pure: desired rules from the stored memberships, and the plan that makes a group match them."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.errors import RuleQuotaExceededError
from schemas.events import Member, MembershipSnapshot
from schemas.rules import DesiredRule, ExistingRule, Family, Permission
from schemas.settings import AddressMode, PortSpec

MARKER_PREFIX = "sgmesh:"
DESCRIPTION_LIMIT = 255
# Characters AWS accepts in a rule description; anything else in a group name is replaced.
DESCRIPTION_FORBIDDEN = re.compile(r"[^a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]")


def marker(cluster: str) -> str:
    return f"{MARKER_PREFIX}{cluster}"


def is_managed(rule: ExistingRule, cluster: str) -> bool:
    """Managed rules carry the cluster's marker as the first word of their description."""
    return rule.permission is not None and rule.description.split(" ", 1)[0] == marker(cluster)


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
    desired: dict[Permission, DesiredRule] = {}
    for snapshot in sorted(states, key=lambda state: state.source.key):
        for member in snapshot.members:
            description = describe_rule(cluster, snapshot, member)
            for address in member_addresses(member, mode):
                for spec in port_specs:
                    permission = Permission.for_spec(spec, address)
                    if permission is not None:
                        desired.setdefault(permission, DesiredRule(permission, description))
    return desired


@dataclass(frozen=True)
class Plan:
    """The changes one group needs; empty when it already matches."""

    group_id: str
    authorize: tuple[DesiredRule, ...]
    revoke: tuple[ExistingRule, ...]

    @property
    def is_empty(self) -> bool:
        return not self.authorize and not self.revoke


def plan_group(
    group_id: str, cluster: str, desired: Mapping[Permission, DesiredRule], existing: Iterable[ExistingRule]
) -> Plan:
    """authorize(desired - present), revoke(managed - desired); unmarked rules are never revoked.

    An operator's unmarked rule with the same permission already admits the member, so it counts as
    present: authorizing it again would only fail as a duplicate.
    """
    existing_rules = tuple(existing)
    present = {rule.permission for rule in existing_rules if rule.permission is not None}
    authorize = tuple(rule for permission, rule in sorted(desired.items()) if permission not in present)
    revoke = tuple(
        rule
        for rule in existing_rules
        if is_managed(rule, cluster) and rule.permission is not None and rule.permission not in desired
    )
    return Plan(group_id, authorize, revoke)


def rules_after(plan: Plan, existing: Iterable[ExistingRule]) -> Counter[Family]:
    """Inbound rules per family once the plan is applied, counted as AWS counts the quota.

    References to groups or prefix lists have no CIDR; they are counted against both families, and a
    prefix-list reference by its weight (the list's MaxEntries), as AWS counts it.
    """
    counts: Counter[Family] = Counter()
    revoked = {rule.rule_id for rule in plan.revoke}
    for rule in existing:
        if rule.rule_id in revoked:
            continue
        families = (rule.permission.family,) if rule.permission is not None else tuple(Family)
        counts.update(dict.fromkeys(families, rule.weight))
    counts.update(rule.permission.family for rule in plan.authorize)
    return counts


def check_quota(plan: Plan, existing: Iterable[ExistingRule], quota: int) -> None:
    """Raise, naming the group, the rules needed and the quota, if the plan would not fit."""
    for family, count in sorted(rules_after(plan, existing).items()):
        if count > quota:
            raise RuleQuotaExceededError(plan.group_id, family.value, count, quota)
