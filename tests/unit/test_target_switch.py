"""Switching `target` on a running cluster converges in one reconcile, in every direction, on roomy
and on full groups, without any group passing its quota at any call (a prefix-list reference
weighing the list's MaxEntries, as AWS counts it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from schemas.events import Source
from schemas.prefix_lists import PrefixListInfo
from schemas.quota import Family
from schemas.rules import DesiredRule, InboundRule
from schemas.settings import Settings, TargetMode
from tests.fakes import (
    CLUSTER,
    FakePrefixLists,
    FakeSecurityGroups,
    FakeSourceStates,
    fake_consumer,
    make_member,
    make_snapshot,
    topic_arn,
)

SOURCE = Source(account="111111111111", region="eu-west-1", group="cassandra")
GROUP_IDS = ("sg-0aaaaaaaaaaaaaaa1", "sg-0bbbbbbbbbbbbbbb2")
LIST = PrefixListInfo("pl-0aaaaaaaaaaaaaaa1", Family.IPV4, 1, 6)
MEMBERS = 6
# 2 port specs: a member weighs 2 rules, and the list's 2 references weigh 2 x 6 = 12.
PORTS = "tcp:7000-7001,tcp:9042"


class WeighingGroups(FakeSecurityGroups):
    """Security groups that also note each group's most rules after any call, a reference weighing its
    list's MaxEntries."""

    def __init__(self, lists: FakePrefixLists, *group_ids: str, quota: int) -> None:
        super().__init__(*group_ids, quota=quota)
        self._lists = lists
        self.most: dict[str, int] = dict.fromkeys(group_ids, 0)

    def authorize(self, group_id: str, rules: Sequence[DesiredRule]) -> None:
        super().authorize(group_id, rules)
        self.most[group_id] = max(self.most[group_id], self.weight(group_id))

    def weight(self, group_id: str) -> int:
        return sum(self._weigh(rule) for rule in self.rules(group_id))

    def _weigh(self, rule: InboundRule) -> int:
        reference = rule.reference
        if reference is None:
            return 1
        return self._lists.lists[reference.prefix_list_id].max_entries


def settings(target: TargetMode, quota: int) -> Settings:
    return Settings.from_env(
        {
            "SGMESH_CLUSTER": CLUSTER,
            "SGMESH_TABLE_NAME": "sgmesh-prod",
            "AWS_REGION": "eu-west-1",
            "SGMESH_SECURITY_GROUP_IDS": ",".join(GROUP_IDS),
            "SGMESH_PORTS": PORTS,
            "SGMESH_PEER_TOPIC_ARNS": topic_arn(SOURCE),
            "SGMESH_RULE_QUOTA": str(quota),
            "SGMESH_TARGET": target.value,
            "SGMESH_PREFIX_LIST_IDS": LIST.prefix_list_id,
        }
    )


def admitted_by(groups: WeighingGroups, lists: FakePrefixLists, group_id: str) -> set[str]:
    rules = groups.rules(group_id)
    cidrs = {
        r.permission.cidr for r in rules if r.permission is not None and r.description.startswith("sgmesh:")
    }
    if any(rule.reference is not None for rule in rules):
        cidrs |= set(lists.entries(LIST.prefix_list_id))
    return cidrs


def admitted(target: TargetMode, groups: WeighingGroups, lists: FakePrefixLists) -> set[str]:
    per_group = [admitted_by(groups, lists, group_id) for group_id in GROUP_IDS]
    return set().union(*per_group) if target is TargetMode.SHARDED else set.intersection(*per_group)


SWITCHES = [
    (TargetMode.SECURITY_GROUP, TargetMode.PREFIX_LIST),
    (TargetMode.PREFIX_LIST, TargetMode.SECURITY_GROUP),
    (TargetMode.SECURITY_GROUP, TargetMode.SHARDED),
    (TargetMode.SHARDED, TargetMode.SECURITY_GROUP),
    (TargetMode.PREFIX_LIST, TargetMode.SHARDED),
]


@pytest.mark.parametrize(("before", "after"), SWITCHES)
@pytest.mark.parametrize("quota", [40, 12], ids=["roomy", "full"])
def test_a_switch_converges_in_one_reconcile_within_the_quota_at_every_call(
    before: TargetMode, after: TargetMode, quota: int
) -> None:
    # GIVEN 6 members on 2 port specs converged in the first mode: a full group (quota 12) holds
    # either the 12 per-address rules or the 2 references of a 6-entry list, never both
    states, lists = FakeSourceStates(), FakePrefixLists(LIST)
    groups = WeighingGroups(lists, *GROUP_IDS, quota=quota)
    members = [make_member(f"i-{n:017x}", f"54.0.0.{n}/32") for n in range(1, MEMBERS + 1)]
    everyone = {member.public_ipv4 for member in members}

    def consumer(target: TargetMode) -> Any:
        return fake_consumer(settings(target, quota), states=states, groups=groups, lists=lists)

    consumer(before).apply([make_snapshot(SOURCE, 1, members)])
    assert admitted(before, groups, lists) == everyone
    calls = len(groups.calls)

    # WHEN a deploy switches the target and the next snapshot arrives
    consumer(after).apply([make_snapshot(SOURCE, 2, members)])

    # THEN every member is admitted the new way, the old way is gone, and no group passed its quota
    assert admitted(after, groups, lists) == everyone
    references = [r for g in GROUP_IDS for r in groups.rules(g) if r.reference is not None]
    assert bool(references) == (after is TargetMode.PREFIX_LIST)
    assert all(most <= quota for most in groups.most.values()), groups.most
    # ... in one reconcile: a revoke and an authorize per group at most
    assert len(groups.calls) - calls <= 2 * len(GROUP_IDS)
