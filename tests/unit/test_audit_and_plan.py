"""The consumer's audit trail and its read-only plan."""

from __future__ import annotations

from typing import Any

from consumers.service import ApplyService
from schemas.audit import AuditKind
from schemas.events import Source
from schemas.settings import Settings
from tests.fakes import (
    CLUSTER,
    RECEIVED_AT,
    FakeAuditLog,
    FakeSecurityGroups,
    fake_consumer,
    make_member,
    make_snapshot,
)

GROUP = "sg-0aaaaaaaaaaaaaaa1"
SOURCE = Source(account="111111111111", region="eu-west-1", group="cassandra-a")
NOW = RECEIVED_AT


def service(quota: int = 60) -> tuple[ApplyService[Any], FakeSecurityGroups, FakeAuditLog]:
    settings = Settings.from_env(
        {
            "SGMESH_CLUSTER": CLUSTER,
            "SGMESH_TABLE_NAME": "sgmesh-prod",
            "AWS_REGION": "eu-west-1",
            "SGMESH_SECURITY_GROUP_IDS": GROUP,
            "SGMESH_PORTS": "tcp:7000-7001,tcp:9042",
            "SGMESH_PEER_TOPIC_ARNS": "arn:aws:sns:eu-west-1:111111111111:sgmesh-prod",
            "SGMESH_RULE_QUOTA": str(quota),
        }
    )
    groups, audit = FakeSecurityGroups(GROUP), FakeAuditLog()
    consumer = fake_consumer(settings, groups=groups, audit=audit, clock=lambda: NOW)
    return consumer, groups, audit


def test_an_applied_snapshot_and_the_rules_it_changed_are_recorded_with_their_cause() -> None:
    consumer, _groups, audit = service()
    snapshot = make_snapshot(SOURCE, 3, [make_member("i-00000000000000001", "54.1.2.3/32")])

    consumer.apply([snapshot])

    applied, changed = audit.entries
    assert (applied.kind, applied.source, applied.version, applied.members, applied.at) == (
        AuditKind.SNAPSHOT_APPLIED,
        SOURCE.key,
        3,
        1,
        NOW,
    )
    assert changed.kind is AuditKind.RULES_CHANGED
    assert changed.group_id == GROUP
    assert sorted(changed.authorized) == ["tcp:7000-7001 from 54.1.2.3/32", "tcp:9042-9042 from 54.1.2.3/32"]
    assert changed.causes == (f"{SOURCE.key}@3",)
    assert changed.causes_sources == (SOURCE.key,)


def test_a_stale_snapshot_adds_nothing_to_the_trail() -> None:
    consumer, _groups, audit = service()
    snapshot = make_snapshot(SOURCE, 3, [make_member("i-00000000000000001", "54.1.2.3/32")])
    consumer.apply([snapshot])
    recorded = list(audit.entries)

    consumer.apply([snapshot])

    assert audit.entries == recorded


def test_a_failing_audit_write_does_not_fail_a_correct_reconcile() -> None:
    consumer, groups, audit = service()
    audit.failure = RuntimeError("throttled")

    report = consumer.apply([make_snapshot(SOURCE, 1, [make_member("i-00000000000000001", "54.1.2.3/32")])])

    assert [group.group_id for group in report.review.groups] == [GROUP]
    assert len(groups.rules(GROUP)) == 2


def test_plan_reads_only_and_reports_the_quota_instead_of_raising() -> None:
    consumer, groups, _audit = service(quota=3)
    members = [make_member(f"i-0000000000000000{n}", f"54.1.2.{n}/32") for n in range(1, 3)]
    consumer.apply([make_snapshot(SOURCE, 1, members[:1])])
    calls_before = groups.mutating_calls
    # A second member would need 4 rules, over the quota of 3: store it without reconciling.
    consumer._states.store_if_newer(make_snapshot(SOURCE, 2, members))

    (review,) = consumer.plan().groups

    assert groups.mutating_calls == calls_before
    assert (len(review.plan.authorize), len(review.plan.waiting)) == (0, 2)
    assert review.over_quota
    assert dict(review.rules_after) == {"ipv4": 2}
