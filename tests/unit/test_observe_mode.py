"""Observe mode, for every target: the consumer stores and plans, reports the drift, and writes nothing;
switched off, its next reconcile applies the plan. And the replication-health numbers it reports."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from consumers.metrics import Outcome
from schemas.audit import AuditKind
from schemas.events import Cause, CauseKind, Source
from schemas.prefix_lists import PrefixListInfo
from schemas.quota import Family
from schemas.settings import Settings, TargetMode
from tests.fakes import (
    CLUSTER,
    PRODUCED_AT,
    RECEIVED_AT,
    FakeAuditLog,
    FakeOutcomes,
    FakePrefixLists,
    FakeSecurityGroups,
    FakeSourceStates,
    fake_consumer,
    make_member,
    make_snapshot,
    topic_arn,
)

SOURCE = Source(account="111111111111", region="eu-west-1", group="cassandra-a")
OTHER = Source(account="111111111111", region="us-east-1", group="cassandra-b")
GROUP_IDS = ("sg-0aaaaaaaaaaaaaaa1", "sg-0bbbbbbbbbbbbbbb2")
LIST = PrefixListInfo("pl-0aaaaaaaaaaaaaaa1", Family.IPV4, 1, 10)
MEMBERS = [make_member(f"i-{n:017x}", f"54.0.0.{n}/32") for n in (1, 2, 3)]


def settings(target: TargetMode, *, observe: bool) -> Settings:
    return Settings.from_env(
        {
            "SGMESH_CLUSTER": CLUSTER,
            "SGMESH_TABLE_NAME": "sgmesh-prod",
            "AWS_REGION": "eu-west-1",
            "SGMESH_SECURITY_GROUP_IDS": ",".join(GROUP_IDS),
            "SGMESH_PORTS": "tcp:7000-7001,tcp:9042",
            "SGMESH_PEER_TOPIC_ARNS": f"{topic_arn(SOURCE)},{topic_arn(OTHER)}",
            "SGMESH_TARGET": target.value,
            "SGMESH_PREFIX_LIST_IDS": LIST.prefix_list_id,
            "SGMESH_OBSERVE": "true" if observe else "false",
        }
    )


class World:
    """One region's table, groups and lists, which consumers of either mode share across deploys."""

    def __init__(self) -> None:
        self.states = FakeSourceStates()
        self.groups = FakeSecurityGroups(*GROUP_IDS)
        self.lists = FakePrefixLists(LIST)
        self.outcomes = FakeOutcomes()
        self.audit = FakeAuditLog()

    def consumer(self, target: TargetMode, *, observe: bool) -> Any:
        return fake_consumer(
            settings(target, observe=observe),
            states=self.states,
            groups=self.groups,
            lists=self.lists,
            outcomes=self.outcomes,
            audit=self.audit,
        )

    def writes(self) -> int:
        return len(self.groups.calls) + len(self.lists.writes)

    def admitted(self) -> set[str]:
        rules = {
            rule.permission.cidr
            for group_id in GROUP_IDS
            for rule in self.groups.rules(group_id)
            if rule.permission is not None
        }
        listed = set(self.lists.entries(LIST.prefix_list_id))
        return rules | listed


@pytest.mark.parametrize("target", list(TargetMode))
def test_an_observing_consumer_stores_and_plans_but_writes_to_no_group_or_list(target: TargetMode) -> None:
    # GIVEN a region in observe mode, with its groups and list empty
    world = World()
    # WHEN a snapshot of three members arrives
    report = world.consumer(target, observe=True).apply([make_snapshot(SOURCE, 1, MEMBERS)])
    # THEN it is stored, and the report is the plan: flagged as observed, not applied
    assert [state.version for state in world.states.stored_states(CLUSTER)] == [1]
    assert report.observing
    assert not report.review.is_empty
    # ... no group and no list was written
    assert world.writes() == 0
    assert world.admitted() == set()
    # ... and the drift is counted per group or list: what it would authorize, nothing to revoke
    drift = {key: value for key, value in world.outcomes.targets.items() if value}
    assert drift
    assert {outcome for outcome, _target in drift} == {Outcome.DRIFT_AUTHORIZE}
    assert Outcome.RULES_AUTHORIZED not in world.outcomes.counts
    # ... and the audit trail records the snapshot, and no rule change that did not happen
    assert [entry.kind for entry in world.audit.entries] == [AuditKind.SNAPSHOT_APPLIED]


@pytest.mark.parametrize("target", list(TargetMode))
def test_switching_observe_mode_off_makes_the_next_reconcile_apply_the_plan(target: TargetMode) -> None:
    # GIVEN a region that observed a snapshot of three members
    world = World()
    world.consumer(target, observe=True).apply([make_snapshot(SOURCE, 1, MEMBERS)])
    # WHEN a deploy switches observe mode off and the next snapshot (the same members) arrives
    report = world.consumer(target, observe=False).apply([make_snapshot(SOURCE, 2, MEMBERS)])
    # THEN every member is admitted, and the report says it was applied
    assert not report.observing
    assert world.admitted() == {member.public_ipv4 for member in MEMBERS}


def test_an_observing_consumer_reports_the_rules_it_would_revoke_and_keeps_them() -> None:
    # GIVEN a converged region whose consumer is then switched to observe mode
    world = World()
    world.consumer(TargetMode.SECURITY_GROUP, observe=False).apply([make_snapshot(SOURCE, 1, MEMBERS)])
    calls = len(world.groups.calls)
    # WHEN a member leaves
    world.consumer(TargetMode.SECURITY_GROUP, observe=True).apply([make_snapshot(SOURCE, 2, MEMBERS[1:])])
    # THEN its two rules are reported as drift in each group, and still there
    for group_id in GROUP_IDS:
        assert world.outcomes.targets[Outcome.DRIFT_REVOKE, group_id] == 2
        assert world.outcomes.targets[Outcome.DRIFT_AUTHORIZE, group_id] == 0
    assert len(world.groups.calls) == calls
    assert MEMBERS[0].public_ipv4 in world.admitted()


def test_each_applied_snapshot_reports_its_replication_lag_and_each_reconcile_the_oldest_source() -> None:
    # GIVEN snapshots of two sources, one produced 30 s before the consumer's clock, one 20 min before
    world = World()
    old = make_snapshot(OTHER, 1, [make_member("i-0000000000000000a", "54.0.1.1/32")])
    old = old.model_copy(update={"produced_at": RECEIVED_AT - timedelta(minutes=20)})
    # WHEN both apply in one batch
    world.consumer(TargetMode.SECURITY_GROUP, observe=False).apply([make_snapshot(SOURCE, 1, MEMBERS), old])
    # THEN each applied snapshot gave one lag value, and the oldest source's age is the older one's
    lags = sorted(world.outcomes.durations[Outcome.REPLICATION_LAG])
    assert lags == [(RECEIVED_AT - PRODUCED_AT).total_seconds(), 20 * 60.0]
    assert world.outcomes.durations[Outcome.OLDEST_SOURCE_AGE] == [20 * 60.0]


def test_a_retired_source_never_counts_as_the_least_recently_heard() -> None:
    # GIVEN a source retired long ago (its region stopped re-publishing the retirement), and a live one
    world = World()
    retired = make_snapshot(OTHER, 1, cause=Cause(kind=CauseKind.RETIRED))
    retired = retired.model_copy(update={"produced_at": RECEIVED_AT - timedelta(minutes=30)})
    # WHEN both are applied
    world.consumer(TargetMode.SECURITY_GROUP, observe=False).apply(
        [make_snapshot(SOURCE, 1, MEMBERS), retired]
    )
    # THEN the oldest source age is the live source's
    assert world.outcomes.durations[Outcome.OLDEST_SOURCE_AGE] == [
        (RECEIVED_AT - PRODUCED_AT).total_seconds()
    ]
