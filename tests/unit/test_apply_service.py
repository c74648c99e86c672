"""The consumer service over fakes: any order, duplication and batching of snapshots converges."""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from consumers.service import ApplyService
from schemas.errors import InvalidRecordError, RuleConflictError, RuleQuotaExceededError, SettingsError
from schemas.events import Member, MembershipSnapshot, Source
from schemas.rules import InboundRule, Permission
from schemas.settings import AddressMode, Settings
from tests.fakes import (
    CLUSTER,
    FakeSecurityGroups,
    FakeSourceStates,
    fake_consumer,
    make_snapshot,
    sns_body,
    topic_arn,
)

SOURCES = (
    Source(account="111111111111", region="eu-west-1", group="cassandra-a"),
    Source(account="222222222222", region="us-east-1", group="cassandra-b"),
    Source(account="111111111111", region="ap-south-1", group="cassandra-c"),
)
GROUP_IDS = ("sg-0aaaaaaaaaaaaaaa1", "sg-0bbbbbbbbbbbbbbb2")
PORT_RANGES = (("tcp", 7000, 7001), ("udp", 7002, 7002))
OPERATOR_SSH = Permission("tcp", 22, 22, "203.0.113.7/32")
OTHER_CLUSTER = Permission("tcp", 7000, 7001, "54.200.0.1/32")
STALE_MANAGED = Permission("tcp", 7000, 7001, "54.201.0.1/32")


def consumer_settings(mode: AddressMode = AddressMode.PUBLIC, **overrides: str) -> Settings:
    environment = {
        "SGMESH_CLUSTER": CLUSTER,
        "SGMESH_TABLE_NAME": "sgmesh-prod",
        "AWS_REGION": "eu-west-1",
        "SGMESH_SECURITY_GROUP_IDS": ",".join(GROUP_IDS),
        "SGMESH_PORTS": "tcp:7000-7001,udp:7002",
        "SGMESH_PEER_TOPIC_ARNS": ",".join(topic_arn(source) for source in SOURCES),
        "SGMESH_ADDRESS": mode.value,
    }
    return Settings.from_env(environment | overrides)


def new_service(
    settings: Settings | None = None, max_conflict_retries: int = 3
) -> tuple[ApplyService[Any], FakeSourceStates, FakeSecurityGroups]:
    states, groups = FakeSourceStates(), FakeSecurityGroups(*GROUP_IDS)
    service = fake_consumer(
        settings or consumer_settings(),
        states=states,
        groups=groups,
        max_conflict_retries=max_conflict_retries,
    )
    return service, states, groups


def another_consumer(states: FakeSourceStates, groups: FakeSecurityGroups) -> ApplyService[Any]:
    """A second consumer of the same region: same table, same groups (Lambda runs several at once)."""
    return fake_consumer(consumer_settings(), states=states, groups=groups)


def pool_member(source_index: int, n: int) -> Member:
    """Instance n of a source; its addresses are fixed, so a member means the same rules everywhere."""
    return Member(
        instance_id=f"i-{source_index:08x}{n:09x}",
        public_ipv4=f"54.{source_index + 1}.0.{n + 1}/32",
        private_ipv4=f"10.{source_index}.0.{n + 1}/32",
        ipv6=(f"2600:1f18:{source_index + 1:x}::{n + 1:x}/128",),
    )


def snapshot_of(source_index: int, version: int, members: Iterable[int]) -> MembershipSnapshot:
    return make_snapshot(
        SOURCES[source_index], version, [pool_member(source_index, n) for n in sorted(members)]
    )


def expected_permissions(newest: Iterable[MembershipSnapshot], mode: AddressMode) -> set[Permission]:
    """Written out independently of the product: (every port range) x (every address the mode admits)."""

    def admitted(member: Member) -> tuple[str | None, ...]:
        return {
            AddressMode.PUBLIC: (member.public_ipv4,),
            AddressMode.PRIVATE: (member.private_ipv4,),
            AddressMode.IPV6: member.ipv6,
            AddressMode.DUAL_STACK: (member.public_ipv4, *member.ipv6),
        }[mode]

    addresses = {
        address for snapshot in newest for member in snapshot.members for address in admitted(member)
    }
    return {Permission(p, f, t, cidr) for p, f, t in PORT_RANGES for cidr in addresses if cidr}


def managed_permissions(groups: FakeSecurityGroups, group_id: str) -> set[Permission]:
    return {
        rule.permission
        for rule in groups.rules(group_id)
        if rule.permission is not None and rule.description.startswith(f"sgmesh:{CLUSTER} ")
    }


def seed_foreign_rules(groups: FakeSecurityGroups) -> dict[str, list[InboundRule]]:
    """An operator's rule, another cluster's rule and a leftover of ours in every group."""
    for group_id in GROUP_IDS:
        groups.add_rule(group_id, OPERATOR_SSH, "ssh from the office")
        groups.add_rule(group_id, OTHER_CLUSTER, "sgmesh:other us-east-1/kafka/i-00000000000000001")
        groups.add_rule(
            group_id, STALE_MANAGED, f"sgmesh:{CLUSTER} eu-west-1/cassandra-a/i-0000000000000dead"
        )
    return {
        group_id: [r for r in groups.rules(group_id) if "sgmesh:prod " not in r.description]
        for group_id in GROUP_IDS
    }


def assert_converged(groups: FakeSecurityGroups, expected: set[Permission]) -> None:
    for group_id in GROUP_IDS:
        assert managed_permissions(groups, group_id) == expected
        permissions = [rule.permission for rule in groups.rules(group_id)]
        assert len(permissions) == len(set(permissions))


# --- the property -------------------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[MembershipSnapshot]:
    """2-3 sources; per source, increasing versions (with gaps, as lost claims leave) and changing members."""
    snapshots = []
    for index in range(draw(st.integers(2, 3))):
        versions = draw(st.sets(st.integers(1, 30), min_size=1, max_size=4))
        for version in sorted(versions):
            snapshots.append(snapshot_of(index, version, draw(st.sets(st.integers(0, 5), max_size=5))))
    return snapshots


@st.composite
def batched_deliveries(
    draw: st.DrawFn, snapshots: list[MembershipSnapshot]
) -> list[list[MembershipSnapshot]]:
    """Any permutation with any duplications, cut into batches of any size."""
    again = draw(st.lists(st.sampled_from(snapshots), max_size=len(snapshots)))
    delivered = draw(st.permutations(snapshots + again))
    cuts = draw(st.sets(st.integers(1, max(1, len(delivered) - 1)), max_size=len(delivered)))
    bounds = sorted({0, *cuts, len(delivered)})
    return [delivered[start:end] for start, end in pairwise(bounds)]


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), mode=st.sampled_from(AddressMode))
def test_any_order_duplication_and_batching_converges_to_the_newest_snapshot_per_source(
    data: st.DataObject, mode: AddressMode
) -> None:
    # GIVEN snapshots of several sources and groups holding an operator's, another cluster's and a stale rule
    snapshots = data.draw(histories(), label="snapshots")
    batches = data.draw(batched_deliveries(snapshots), label="batches")
    service, states, groups = new_service(consumer_settings(mode))
    foreign = seed_foreign_rules(groups)

    # WHEN they are delivered in any order, duplicated, in batches of any size
    for batch in batches:
        service.apply(batch)

    # THEN the managed rules are exactly those of the newest snapshot per source
    newest = [
        max((s for s in snapshots if s.source.key == key), key=lambda s: s.version)
        for key in {s.source.key for s in snapshots}
    ]
    assert states.versions(CLUSTER) == {s.source.key: s.version for s in newest}
    assert_converged(groups, expected_permissions(newest, mode))
    # AND the operator's and the other cluster's rules are untouched
    for group_id in GROUP_IDS:
        assert [rule for rule in groups.rules(group_id) if rule in foreign[group_id]] == foreign[group_id]
    # AND delivering any of them again changes nothing
    calls = groups.mutating_calls
    service.apply([data.draw(st.sampled_from(snapshots), label="redelivered")])
    assert groups.mutating_calls == calls


# --- stale and duplicate ------------------------------------------------------------------------------


def test_given_newer_version_stored_when_older_or_same_arrives_then_no_mutating_call() -> None:
    service, states, groups = new_service()
    newer = snapshot_of(0, 5, {0, 1})
    service.apply([newer])
    calls = groups.mutating_calls

    report = service.apply([snapshot_of(0, 4, {2}), newer])
    report_again = service.apply([newer])

    assert groups.mutating_calls == calls
    assert report.applied == report_again.applied == ()
    assert report.stale == report_again.stale == (newer,)
    assert all(group.plan.is_empty for group in report.review.groups)
    assert states.versions(CLUSTER) == {SOURCES[0].key: 5}
    assert_converged(groups, expected_permissions([newer], AddressMode.PUBLIC))


def test_given_several_versions_of_a_source_in_a_batch_then_newest_stored_once_and_one_call_per_group() -> (
    None
):
    service, states, groups = new_service()

    report = service.apply(
        [snapshot_of(0, 2, {1}), snapshot_of(0, 3, {2}), snapshot_of(0, 1, {0}), snapshot_of(0, 3, {2})]
    )

    assert report.applied == (snapshot_of(0, 3, {2}),)
    assert states.writes == 1
    assert groups.calls == [("authorize", GROUP_IDS[0]), ("authorize", GROUP_IDS[1])]
    assert_converged(groups, expected_permissions([snapshot_of(0, 3, {2})], AddressMode.PUBLIC))


def test_given_member_leaves_when_applied_then_its_rules_are_revoked_in_one_call_per_group() -> None:
    service, _states, groups = new_service()
    service.apply([snapshot_of(0, 1, {0, 1, 2})])
    groups.calls.clear()

    service.apply([snapshot_of(0, 2, {0})])

    assert groups.calls == [("revoke", GROUP_IDS[0]), ("revoke", GROUP_IDS[1])]
    assert_converged(groups, expected_permissions([snapshot_of(0, 2, {0})], AddressMode.PUBLIC))


# --- quota --------------------------------------------------------------------------------------------


def test_given_second_group_would_exceed_quota_when_applied_then_what_fits_applies_and_it_fails_loudly() -> (
    None
):
    # GIVEN the second group holds 57 operator rules (room for one member on two ports, not two)
    service, _states, groups = new_service()
    for n in range(57):
        groups.add_rule(GROUP_IDS[1], Permission("tcp", 22, 22, f"203.0.113.{n + 1}/32"), "operator")

    # WHEN two members arrive
    with pytest.raises(RuleQuotaExceededError) as raised:
        service.apply([snapshot_of(0, 1, {0, 1})])

    # THEN the error names the full group and what it would have needed; the first group took both
    # members, the second the lowest address whole, and no group passed its quota
    assert (raised.value.group_id, raised.value.rules_needed) == (GROUP_IDS[1], 61)
    both = expected_permissions([snapshot_of(0, 1, {0, 1})], AddressMode.PUBLIC)
    assert managed_permissions(groups, GROUP_IDS[0]) == both
    assert managed_permissions(groups, GROUP_IDS[1]) == expected_permissions(
        [snapshot_of(0, 1, {0})], AddressMode.PUBLIC
    )
    assert len(groups.rules(GROUP_IDS[1])) == 59


def test_given_ipv6_rules_when_applied_then_they_do_not_count_against_the_ipv4_quota() -> None:
    service, _states, groups = new_service()
    for n in range(55):
        groups.add_rule(GROUP_IDS[1], Permission("tcp", 22, 22, f"203.0.113.{n + 1}/32"), "operator")
    for n in range(30):
        groups.add_rule(GROUP_IDS[1], Permission("tcp", 22, 22, f"2600:1f18::{n + 1:x}/128"), "operator")

    service.apply([snapshot_of(0, 1, {0, 1})])

    assert_converged(groups, expected_permissions([snapshot_of(0, 1, {0, 1})], AddressMode.PUBLIC))


# --- conflicts ----------------------------------------------------------------------------------------


def test_given_another_writer_adds_the_same_rule_between_read_and_write_then_retried_and_converges() -> None:
    service, _states, groups = new_service()

    def racing_writer(operation: str, group_id: str, permissions: tuple[Permission, ...]) -> None:
        groups.add_rule(
            group_id, permissions[0], f"sgmesh:{CLUSTER} eu-west-1/cassandra-a/i-00000000000000000"
        )

    groups.interference.append(racing_writer)

    service.apply([snapshot_of(0, 1, {0, 1})])

    assert groups.calls == [("authorize", GROUP_IDS[0])] * 2 + [("authorize", GROUP_IDS[1])]
    assert_converged(groups, expected_permissions([snapshot_of(0, 1, {0, 1})], AddressMode.PUBLIC))


def test_given_another_writer_revokes_the_stale_rule_first_then_retried_and_converges() -> None:
    service, _states, groups = new_service()
    service.apply([snapshot_of(0, 1, {0, 1})])
    groups.calls.clear()

    def racing_revoker(operation: str, group_id: str, permissions: tuple[Permission, ...]) -> None:
        for rule in groups.rules(group_id):
            if rule.permission in permissions:
                groups.remove_rule(group_id, rule.rule_id)

    groups.interference.append(racing_revoker)

    service.apply([snapshot_of(0, 2, {0})])

    assert groups.calls[0] == ("revoke", GROUP_IDS[0])
    assert_converged(groups, expected_permissions([snapshot_of(0, 2, {0})], AddressMode.PUBLIC))


def test_given_other_writers_keep_winning_the_race_then_conflict_raised_after_bounded_retries() -> None:
    service, _states, groups = new_service(max_conflict_retries=3)

    def racing_writer(operation: str, group_id: str, permissions: tuple[Permission, ...]) -> None:
        groups.add_rule(group_id, permissions[0], f"sgmesh:{CLUSTER} racing")

    groups.interference.extend([racing_writer] * 100)

    with pytest.raises(RuleConflictError, match="4 attempts"):
        service.apply([snapshot_of(0, 1, {0, 1, 2, 3})])

    assert groups.calls == [("authorize", GROUP_IDS[0])] * 4

    # AND once the race is over, the retried record converges
    groups.interference.clear()
    service.apply([snapshot_of(0, 1, {0, 1, 2, 3})])
    assert_converged(groups, expected_permissions([snapshot_of(0, 1, {0, 1, 2, 3})], AddressMode.PUBLIC))


# --- accept: envelope validation ----------------------------------------------------------------------


def body_for(snapshot: MembershipSnapshot, arn: str | None = None) -> str:
    return sns_body(snapshot.to_json(), arn or topic_arn(snapshot.source))


def test_given_valid_envelope_from_the_sources_own_topic_when_accepted_then_snapshot() -> None:
    service, _states, _groups = new_service()
    snapshot = snapshot_of(1, 4, {0, 1})

    assert service.accept(body_for(snapshot), "m-1") == snapshot


def rejected(body: str) -> str:
    service, states, groups = new_service()
    with pytest.raises(InvalidRecordError) as raised:
        service.accept(body, "m-1")
    assert states.writes == 0
    assert groups.mutating_calls == 0
    return str(raised.value)


def test_given_body_not_json_when_accepted_then_rejected() -> None:
    assert "not JSON" in rejected("{not json")


@pytest.mark.parametrize(
    "body",
    [
        json.dumps([1, 2]),
        json.dumps("Notification"),
        snapshot_of(0, 1, {0}).to_json(),
        json.dumps({"Type": "SubscriptionConfirmation", "TopicArn": topic_arn(SOURCES[0]), "Message": "{}"}),
    ],
)
def test_given_body_not_an_sns_notification_when_accepted_then_rejected(body: str) -> None:
    assert "not an SNS notification" in rejected(body)


def test_given_topic_not_a_peer_when_accepted_then_rejected_naming_the_topic() -> None:
    stranger = "arn:aws:sns:eu-west-1:111111111111:someone-else"

    message = rejected(body_for(snapshot_of(0, 1, {0}), stranger))

    assert stranger in message
    assert "SGMESH_PEER_TOPIC_ARNS" in message


def test_given_snapshot_of_another_cluster_when_accepted_then_rejected_naming_both() -> None:
    snapshot = make_snapshot(SOURCES[0], 1, [pool_member(0, 0)], cluster="staging")

    message = rejected(body_for(snapshot, topic_arn(SOURCES[0])))

    assert "'staging'" in message
    assert "'prod'" in message


@pytest.mark.parametrize(
    "source",
    [
        Source(account="111111111111", region="us-east-1", group="cassandra-a"),
        Source(account="333333333333", region="eu-west-1", group="cassandra-a"),
    ],
)
def test_given_source_not_of_the_topics_region_and_account_when_accepted_then_rejected(
    source: Source,
) -> None:
    snapshot = make_snapshot(source, 1, [pool_member(0, 0)])

    message = rejected(body_for(snapshot, topic_arn(SOURCES[0])))

    assert source.key in message
    assert topic_arn(SOURCES[0]) in message


def test_given_envelope_without_message_string_when_accepted_then_rejected() -> None:
    body = json.dumps({"Type": "Notification", "TopicArn": topic_arn(SOURCES[0]), "Message": {"a": 1}})

    assert "field Message must be a string" in rejected(body)


def test_given_snapshot_with_a_world_open_address_when_accepted_then_rejected_naming_it() -> None:
    document = json.loads(snapshot_of(0, 1, {0}).to_json())
    document["members"][0]["public_ipv4"] = "0.0.0.0/0"

    message = rejected(sns_body(json.dumps(document), topic_arn(SOURCES[0])))

    assert "members.0.public_ipv4" in message
    assert "'0.0.0.0/0'" in message


def test_given_rejected_record_then_logged_as_error_with_its_message_id_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, _states, _groups = new_service()

    with pytest.raises(InvalidRecordError):
        service.accept("{not json", "message-42")

    (record,) = [record for record in caplog.records if record.getMessage() == "record rejected"]
    assert record.levelname == "ERROR"
    assert vars(record)["message_id"] == "message-42"
    assert vars(record)["reason"] == "not-json"
    assert "not JSON" in vars(record)["error"]


@pytest.mark.parametrize("missing", ["SGMESH_SECURITY_GROUP_IDS", "SGMESH_PORTS", "SGMESH_PEER_TOPIC_ARNS"])
def test_given_consumer_setting_missing_when_service_built_then_settings_error_names_it(missing: str) -> None:
    with pytest.raises(SettingsError, match=missing):
        new_service(consumer_settings(AddressMode.PUBLIC, **{missing: ""}))


def test_given_a_member_stored_and_authorized_right_after_our_table_read_then_it_is_not_revoked() -> None:
    # GIVEN two consumers on one table and one set of groups, converged on version 1 of a source
    consumer_a, states, groups = new_service()
    consumer_b = another_consumer(states, groups)
    consumer_a.apply([snapshot_of(0, 1, {0})])
    newer = snapshot_of(0, 2, {0, 1})

    # WHEN B reconciles and, just after B has read the table, A stores a new member and authorizes it
    states.after_read.append(lambda: consumer_a.apply([newer]))
    consumer_b.reconcile()

    # THEN B, which read the groups before the table, did not see A's new rule, so did not revoke it
    assert_converged(groups, expected_permissions([newer], AddressMode.PUBLIC))
    assert [call for call in groups.calls if call[0] == "revoke"] == []


def test_given_a_racing_consumer_stores_a_newer_snapshot_then_the_retry_plans_from_it() -> None:
    # GIVEN two consumers on one table and one set of groups, converged on version 1 of a source
    consumer_a, states, groups = new_service()
    consumer_b = another_consumer(states, groups)
    consumer_a.apply([snapshot_of(0, 1, {0})])

    # WHEN A applies version 2 and, between its read and its first write, B applies version 3 (a new member)
    def consumer_b_runs() -> None:
        consumer_b.apply([snapshot_of(0, 3, {0, 1, 2})])

    groups.interference.append(lambda _operation, _group, _permissions: consumer_b_runs())
    consumer_a.apply([snapshot_of(0, 2, {0, 1})])

    # THEN A's retry planned from the table's newest state: B's new member was not revoked
    assert_converged(groups, expected_permissions([snapshot_of(0, 3, {0, 1, 2})], AddressMode.PUBLIC))
    assert ("revoke", GROUP_IDS[0]) not in groups.calls


def test_given_a_racing_consumer_revokes_the_copy_we_keep_during_a_shard_move_then_we_put_it_back() -> None:
    # GIVEN sharded groups that both hold member 0's rules for a moment (another consumer is moving
    # it: authorized in one group, not yet revoked from the other)
    service, states, groups = new_service(consumer_settings(SGMESH_TARGET="sharded"))
    states.store_if_newer(snapshot_of(0, 1, {0}))
    rules = expected_permissions([snapshot_of(0, 1, {0})], AddressMode.PUBLIC)
    copies = {
        group: [groups.add_rule(group, rule, f"sgmesh:{CLUSTER} x") for rule in rules] for group in GROUP_IDS
    }

    # WHEN we keep one copy and revoke the other, while the other consumer revokes the copy we keep
    def the_other_consumer_finishes_its_move(_operation: str, group_id: str, _rules: object) -> None:
        kept = next(group for group in GROUP_IDS if group != group_id)
        for rule_id in copies[kept]:
            groups.remove_rule(kept, rule_id)

    groups.interference.append(the_other_consumer_finishes_its_move)
    service.reconcile()

    # THEN the member is not left in no group: the re-read after the move saw it and re-planned
    held = [group for group in GROUP_IDS if managed_permissions(groups, group) == rules]
    assert len(held) == 1
    assert sum(len(managed_permissions(groups, group)) for group in GROUP_IDS) == len(rules)
