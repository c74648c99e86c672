"""Every outcome of the consumer is counted, and old or future-dated snapshots never act."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from aws_lambda_powertools.metrics import Metrics

from consumers.metrics import NAMESPACE, SERVICE, EmfOutcomes, Outcome
from consumers.service import ApplyService
from schemas.errors import InvalidRecordError, RuleConflictError, RuleQuotaExceededError
from schemas.events import Member, MembershipSnapshot, Source
from schemas.rules import Permission
from schemas.settings import Settings
from tests.fakes import (
    CLUSTER,
    RECEIVED_AT,
    FakeOutcomes,
    FakeSecurityGroups,
    FakeSourceStates,
    fake_consumer,
    make_member,
    make_snapshot,
    sns_body,
    topic_arn,
)
from tests.support.logs import extra

GROUP = "sg-0aaaaaaaaaaaaaaa1"
SOURCE = Source(account="111111111111", region="eu-west-1", group="cassandra-a")
MAX_AGE = 3600


def consumer(
    now: timedelta = timedelta(0), quota: int = 60
) -> tuple[ApplyService[Any], FakeOutcomes, FakeSourceStates, FakeSecurityGroups]:
    settings = Settings.from_env(
        {
            "SGMESH_CLUSTER": CLUSTER,
            "SGMESH_TABLE_NAME": "sgmesh-prod",
            "AWS_REGION": "eu-west-1",
            "SGMESH_SECURITY_GROUP_IDS": GROUP,
            "SGMESH_PORTS": "tcp:7000",
            "SGMESH_PEER_TOPIC_ARNS": topic_arn(SOURCE),
            "SGMESH_RULE_QUOTA": str(quota),
            "SGMESH_MAX_EVENT_AGE_SECONDS": str(MAX_AGE),
        }
    )
    outcomes, states, groups = FakeOutcomes(), FakeSourceStates(), FakeSecurityGroups(GROUP)
    service = fake_consumer(
        settings, states=states, groups=groups, outcomes=outcomes, clock=lambda: RECEIVED_AT + now
    )
    return service, outcomes, states, groups


def members(count: int) -> list[Member]:
    return [make_member(f"i-{n:017x}", f"54.0.0.{n + 1}/32") for n in range(count)]


def test_a_snapshot_older_than_the_maximum_age_is_dropped_without_any_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a consumer reading a snapshot produced more than the maximum age ago, beside a fresh one
    service, outcomes, states, groups = consumer(now=timedelta(seconds=MAX_AGE + 31))
    old = make_snapshot(SOURCE, 7, members(3))
    fresh = make_snapshot(SOURCE.model_copy(update={"group": "cassandra-b"}), 1, members(1))
    fresh = fresh.model_copy(update={"produced_at": RECEIVED_AT + timedelta(seconds=MAX_AGE)})

    # WHEN the batch is applied
    report = service.apply([old, fresh])

    # THEN only the fresh one is stored and reconciled; the old one is logged and counted as expired
    assert report.applied == (fresh,)
    assert [state.source for state in states.stored_states(CLUSTER)] == [fresh.source]
    assert {rule.permission.cidr for rule in groups.rules(GROUP) if rule.permission} == {"54.0.0.1/32"}
    assert outcomes.counts[Outcome.EXPIRED] == 1
    assert outcomes.counts[Outcome.APPLIED] == 1
    (warning,) = [r for r in caplog.records if r.getMessage().startswith("snapshot dropped")]
    assert (extra(warning, "source"), extra(warning, "version")) == (SOURCE.key, 7)


def test_a_snapshot_dated_in_the_future_is_rejected_with_its_reason() -> None:
    # GIVEN a snapshot produced 10 minutes after the consumer's now (more than the allowed skew)
    service, outcomes, states, _groups = consumer(now=timedelta(minutes=-10))
    body = sns_body(make_snapshot(SOURCE, 1, members(1)).to_json(), topic_arn(SOURCE))

    # WHEN it is accepted THEN it is rejected, counted by reason, and nothing is stored
    with pytest.raises(InvalidRecordError, match="in the future") as rejected:
        service.accept(body, "m-1")
    assert rejected.value.reason == "produced-in-future"
    assert outcomes.reasons[Outcome.REJECTED, "produced-in-future"] == 1
    assert states.stored_states(CLUSTER) == []


def test_a_snapshot_within_the_clock_skew_is_accepted() -> None:
    service, outcomes, _states, _groups = consumer(now=timedelta(minutes=-4))
    body = sns_body(make_snapshot(SOURCE, 1, members(1)).to_json(), topic_arn(SOURCE))

    accepted = service.accept(body, "m-1")
    assert isinstance(accepted, MembershipSnapshot)
    assert accepted.version == 1
    assert outcomes.counts[Outcome.REJECTED] == 0


def test_applied_stale_and_rule_changes_are_counted() -> None:
    service, outcomes, _states, _groups = consumer()
    service.apply([make_snapshot(SOURCE, 2, members(2)), make_snapshot(SOURCE, 1, members(1))])
    service.apply([make_snapshot(SOURCE, 2, members(2))])
    service.apply([make_snapshot(SOURCE, 3, members(1))])

    assert outcomes.counts[Outcome.APPLIED] == 2  # versions 2 and 3
    assert outcomes.counts[Outcome.STALE] == 2  # version 1 coalesced in its batch, version 2 redelivered
    assert outcomes.counts[Outcome.RULES_AUTHORIZED] == 2
    assert outcomes.counts[Outcome.RULES_REVOKED] == 1


def test_the_rule_headroom_is_the_fewest_rules_any_group_can_still_take() -> None:
    # GIVEN a quota of 10, an operator's rule on the group, and 3 members on one port
    service, outcomes, _states, groups = consumer(quota=10)
    groups.add_rule(GROUP, Permission("tcp", 22, 22, "203.0.113.7/32"), "bastion")

    # WHEN their snapshot is applied
    service.apply([make_snapshot(SOURCE, 1, members(3))])

    # THEN 10 - (3 managed + 1 operator rule) = 6 rules are left
    assert outcomes.gauges[Outcome.RULE_HEADROOM] == 6


def test_a_plan_over_the_quota_is_counted_once_and_what_fits_applies() -> None:
    service, outcomes, _states, groups = consumer(quota=2)

    with pytest.raises(RuleQuotaExceededError):
        service.apply([make_snapshot(SOURCE, 1, members(3))])

    assert outcomes.counts[Outcome.QUOTA_EXCEEDED] == 1
    assert len(groups.rules(GROUP)) == 2


def test_every_conflict_retry_is_counted() -> None:
    service, outcomes, _states, groups = consumer()

    def racing_writer(operation: str, group_id: str, permissions: tuple[Permission, ...]) -> None:
        groups.add_rule(group_id, permissions[0], f"sgmesh:{CLUSTER} racing")

    groups.interference.extend([racing_writer] * 100)
    with pytest.raises(RuleConflictError):
        service.apply([make_snapshot(SOURCE, 1, members(6))])

    assert outcomes.counts[Outcome.CONFLICT_RETRIED] == 4


def test_invocation_counts_retried_records_and_throttled_calls() -> None:
    service, outcomes, _states, _groups = consumer()

    service.count_invocation(retried=3, throttled=0)
    service.count_invocation(retried=0, throttled=5)

    assert (outcomes.counts[Outcome.RETRIED], outcomes.counts[Outcome.THROTTLED]) == (3, 5)


def test_emf_lines_carry_the_cluster_and_a_rejection_also_its_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the Powertools metrics the Lambda handler flushes
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    metrics.clear_metrics()  # Powertools keeps one metric set per process; start from an empty one
    outcomes = EmfOutcomes(metrics, "prod")

    # WHEN a rejection and an application are counted and the metrics flushed
    outcomes.count(Outcome.REJECTED, reason="unknown-topic")
    outcomes.count(Outcome.APPLIED, 2)
    outcomes.count(Outcome.STALE, 0)
    metrics.flush_metrics()
    metrics.clear_default_dimensions()

    # THEN one EMF line has the per-reason count, another the totals under the cluster's dimensions
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_reason = next(line for line in lines if "reason" in line)
    assert by_reason["reason"] == "unknown-topic"
    assert by_reason["RecordsRejected"] == [1.0]
    assert by_reason["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "cluster", "reason"]]
    totals = next(line for line in lines if "SnapshotsApplied" in line)
    assert (totals["cluster"], totals["service"], totals["SnapshotsApplied"]) == ("prod", SERVICE, [2.0])
    assert totals["RecordsRejected"] == [1.0]
    assert "SnapshotsStale" not in totals
    assert totals["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE
