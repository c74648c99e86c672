"""The consumer's acknowledgements over fakes: what it publishes after a batch, and what it records of
the acknowledgements of its own region's sources."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from consumers.metrics import Outcome
from consumers.service import ApplyService
from schemas.audit import AuditKind
from schemas.errors import InvalidRecordError, RuleQuotaExceededError
from schemas.events import Acknowledgement, Acknowledger, Enforced, Member, Source
from schemas.lifecycle import AdmissionCheck, parse_producer_event
from schemas.settings import Settings
from tests.fakes import (
    CLUSTER,
    PRODUCED_AT,
    RECEIVED_AT,
    FakeAcknowledgementBook,
    FakeAuditLog,
    FakeEventTopic,
    FakeLifecycleQueue,
    FakeOutcomes,
    fake_consumer,
    make_snapshot,
    sns_body,
    topic_arn,
)

HERE = Source(account="111111111111", region="eu-west-1", group="cassandra")
THERE = Source(account="111111111111", region="us-east-1", group="cassandra")
FAR = Source(account="111111111111", region="ap-south-1", group="cassandra")
GROUP_ID = "sg-0aaaaaaaaaaaaaaa1"
QUEUE = "https://sqs.eu-west-1.amazonaws.com/111111111111/sgmesh-prod-lifecycle-buffer"


def settings(**overrides: str) -> Settings:
    return Settings.from_env(
        {
            "SGMESH_CLUSTER": CLUSTER,
            "SGMESH_TABLE_NAME": "sgmesh-prod",
            "AWS_REGION": HERE.region,
            "SGMESH_TOPIC_ARN": topic_arn(HERE),
            "SGMESH_SECURITY_GROUP_IDS": GROUP_ID,
            "SGMESH_PORTS": "tcp:9042",
            "SGMESH_PEER_TOPIC_ARNS": ",".join(topic_arn(s) for s in (HERE, THERE, FAR)),
            "SGMESH_ADMISSION_QUEUE_URL": QUEUE,
        }
        | overrides
    )


class Consumer:
    def __init__(self, configured: Settings | None = None) -> None:
        self.topic, self.book, self.checks = FakeEventTopic(), FakeAcknowledgementBook(), FakeLifecycleQueue()
        self.outcomes, self.audit = FakeOutcomes(), FakeAuditLog()
        self.service: ApplyService[Any] = fake_consumer(
            configured or settings(),
            topic=self.topic,
            book=self.book,
            checks=self.checks,
            outcomes=self.outcomes,
            audit=self.audit,
        )

    def acknowledgements(self) -> list[Acknowledgement]:
        return [event for event in self.topic.published if isinstance(event, Acknowledgement)]


def member(n: int) -> Member:
    return Member(instance_id=f"i-{n:017x}", public_ipv4=f"54.0.0.{n}/32")


def acknowledgement(by: Source, *entries: tuple[Source, int], seconds: int = 30) -> Acknowledgement:
    return Acknowledgement(
        event_id=uuid4(),
        cluster=CLUSTER,
        acknowledger=Acknowledger(account=by.account, region=by.region),
        acknowledged_at=PRODUCED_AT + timedelta(seconds=seconds),
        enforced=tuple(Enforced(source=s, version=v, produced_at=PRODUCED_AT) for s, v in entries),
    )


def test_a_batch_is_acknowledged_once_on_the_own_topic_with_each_source_version_applied_or_stale() -> None:
    consumer = Consumer()
    consumer.service.apply([make_snapshot(THERE, 5, [member(1)])])

    # WHEN a batch brings a newer snapshot of one source and a redelivery of the other
    consumer.service.apply([make_snapshot(FAR, 2, [member(2)]), make_snapshot(THERE, 5, [member(1)])])

    # THEN one acknowledgement per batch, naming this region and each source's version, stale ones too
    first, second = consumer.acknowledgements()
    assert first.acknowledger == Acknowledger(account=HERE.account, region=HERE.region)
    assert [(e.source, e.version) for e in first.enforced] == [(THERE, 5)]
    assert [(e.source.key, e.version) for e in second.enforced] == [(FAR.key, 2), (THERE.key, 5)]
    assert second.source_regions == ("ap-south-1", "us-east-1")


def test_an_observing_region_acknowledges_what_it_stored_and_planned_marked_observing() -> None:
    # GIVEN a consumer in observe mode (it plans, writes to no group)
    consumer = Consumer(settings(SGMESH_OBSERVE="true"))

    # WHEN a batch is applied
    report = consumer.service.apply([make_snapshot(THERE, 5, [member(1)])])

    # THEN it still acknowledges the version (the barrier does not wait on it), marked observing
    (sent,) = consumer.acknowledgements()
    assert (report.observing, sent.observing) == (True, True)
    assert [(e.source, e.version) for e in sent.enforced] == [(THERE, 5)]
    assert not Consumer().service.apply([make_snapshot(THERE, 5, [member(1)])]).acknowledged[0].observing


def test_a_batch_whose_additions_wait_for_the_quota_acknowledges_nothing() -> None:
    consumer = Consumer(settings(SGMESH_RULE_QUOTA="1"))

    with pytest.raises(RuleQuotaExceededError):
        consumer.service.apply([make_snapshot(THERE, 1, [member(1), member(2)])])

    assert consumer.acknowledgements() == []


def test_an_acknowledgement_that_fails_to_publish_fails_the_batch_and_its_redelivery_acknowledges() -> None:
    consumer = Consumer()
    consumer.topic.failure = ConnectionError("SNS is down")

    with pytest.raises(ConnectionError):
        consumer.service.apply([make_snapshot(THERE, 3, [member(1)])])

    consumer.topic.failure = None
    report = consumer.service.apply([make_snapshot(THERE, 3, [member(1)])])
    assert [s.version for s in report.stale] == [3]
    assert [(e.source, e.version) for e in report.acknowledged[0].enforced] == [(THERE, 3)]


def test_only_the_own_regions_sources_are_recorded_newest_wins() -> None:
    consumer = Consumer()

    consumer.service.apply(
        [
            acknowledgement(THERE, (HERE, 7), (FAR, 3)),
            acknowledgement(THERE, (HERE, 6)),  # older, delivered after the newer one
            acknowledgement(FAR, (HERE, 7)),
            acknowledgement(FAR, (HERE, 7)),  # duplicate
        ]
    )

    assert [(r.source, r.region, r.version) for r in consumer.book.acknowledgements(CLUSTER)] == [
        (HERE.key, "111111111111/ap-south-1", 7),
        (HERE.key, "111111111111/us-east-1", 7),
    ]
    assert consumer.outcomes.counts[Outcome.ACKNOWLEDGEMENTS] == 2
    assert [e.kind for e in consumer.audit.entries] == [AuditKind.ACKNOWLEDGED] * 2
    # acknowledgements alone: no reconcile, and nothing acknowledged back
    assert consumer.acknowledgements() == []


def test_when_the_last_region_acknowledges_the_convergence_is_measured_and_the_producer_checks() -> None:
    consumer = Consumer()
    consumer.service.apply(
        [acknowledgement(HERE, (HERE, 4), seconds=2), acknowledgement(THERE, (HERE, 4), seconds=5)]
    )
    assert consumer.checks.sent == []

    consumer.service.apply([acknowledgement(FAR, (HERE, 4), seconds=9)])

    assert consumer.outcomes.durations[Outcome.CONVERGENCE] == [9.0]
    ((event, delay),) = consumer.checks.sent
    assert (parse_producer_event(event), delay) == (AdmissionCheck((HERE.group,)), 0)
    # a duplicate of the last one measures nothing more, and asks again (harmless: a completion is
    # decided once); a late, older acknowledgement asks nothing
    consumer.service.apply([acknowledgement(FAR, (HERE, 4), seconds=9)])
    assert (len(consumer.checks.sent), consumer.outcomes.durations[Outcome.CONVERGENCE]) == (2, [9.0])
    consumer.service.apply([acknowledgement(THERE, (HERE, 3), seconds=12)])
    assert len(consumer.checks.sent) == 2


def test_a_consumer_that_failed_to_ask_for_the_check_asks_when_the_acknowledgement_comes_again() -> None:
    consumer = Consumer()
    consumer.service.apply([acknowledgement(HERE, (HERE, 4)), acknowledgement(THERE, (HERE, 4))])
    failing = FailingQueue()
    broken = fake_consumer(settings(), topic=consumer.topic, book=consumer.book, checks=failing)

    # WHEN the last region's acknowledgement is recorded, and asking the producer fails
    with pytest.raises(ConnectionError):
        broken.apply([acknowledgement(FAR, (HERE, 4))])
    # THEN SQS delivers it again, and this time the producer is asked
    consumer.service.apply([acknowledgement(FAR, (HERE, 4))])
    ((event, _delay),) = consumer.checks.sent
    assert parse_producer_event(event) == AdmissionCheck((HERE.group,))


class FailingQueue(FakeLifecycleQueue):
    def send(self, event: Mapping[str, Any], delay_seconds: int = 0) -> str:
        raise ConnectionError("SQS is unreachable")


def test_an_acknowledgement_from_a_region_that_is_not_a_peer_or_not_its_topics_is_rejected() -> None:
    consumer = Consumer(settings(SGMESH_PEER_TOPIC_ARNS=",".join(topic_arn(s) for s in (HERE, THERE))))
    from_far = acknowledgement(FAR, (HERE, 4)).to_json()
    forged = acknowledgement(FAR, (HERE, 4)).to_json()

    with pytest.raises(InvalidRecordError, match="not in SGMESH_PEER_TOPIC_ARNS"):
        consumer.service.accept(sns_body(from_far, topic_arn(FAR)), "m1")
    with pytest.raises(InvalidRecordError, match="acknowledger 111111111111/ap-south-1 did not come"):
        consumer.service.accept(sns_body(forged, topic_arn(THERE)), "m2")
    assert consumer.outcomes.reasons[Outcome.REJECTED, "wrong-source"] == 1


def test_an_acknowledgement_from_the_future_or_too_old_is_not_recorded() -> None:
    consumer = Consumer()
    future = acknowledgement(THERE, (HERE, 4), seconds=3600).to_json()
    with pytest.raises(InvalidRecordError, match="acknowledged_at"):
        consumer.service.accept(sns_body(future, topic_arn(THERE)), "m1")
    old = acknowledgement(THERE, (HERE, 4), seconds=-86400)
    consumer.service.apply([old])
    assert consumer.book.acknowledgements(CLUSTER) == []
    assert RECEIVED_AT - old.acknowledged_at > timedelta(hours=6)
