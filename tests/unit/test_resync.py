"""Resync requests: a consumer whose table was empty asks the mesh, on its own topic; every consumer
answers with its own region's stored snapshots, checked like a snapshot and rate-limited."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from consumers.metrics import Outcome
from schemas.errors import InvalidRecordError
from schemas.events import (
    RESYNC_REQUEST_TYPE,
    MembershipSnapshot,
    Requester,
    ResyncReason,
    ResyncRequest,
    Source,
    parse_event,
)
from schemas.settings import Settings
from tests.fakes import (
    CLUSTER,
    RECEIVED_AT,
    FakeEventTopic,
    FakeOutcomes,
    FakeSourceStates,
    fake_consumer,
    make_member,
    make_snapshot,
    sns_body,
    topic_arn,
)

HERE = Source(account="111111111111", region="eu-west-1", group="cassandra")
HERE_TOO = Source(account="111111111111", region="eu-west-1", group="cassandra-b")
THERE = Source(account="111111111111", region="us-east-1", group="cassandra")
# The same region in another account of a cross-account cluster: not this consumer's own.
OTHER_ACCOUNT = Source(account="222222222222", region="eu-west-1", group="cassandra")
GROUP = "sg-0aaaaaaaaaaaaaaa1"


def settings(**overrides: str) -> Settings:
    environment = {
        "SGMESH_CLUSTER": CLUSTER,
        "SGMESH_TABLE_NAME": "sgmesh-prod",
        "AWS_REGION": "eu-west-1",
        "SGMESH_TOPIC_ARN": topic_arn(HERE),
        "SGMESH_SECURITY_GROUP_IDS": GROUP,
        "SGMESH_PORTS": "tcp:7000",
        "SGMESH_PEER_TOPIC_ARNS": ",".join(topic_arn(s) for s in (HERE, THERE, OTHER_ACCOUNT)),
    }
    return Settings.from_env({**environment, **overrides})


class Consumer:
    """A consumer over fakes, its clock movable, its own topic recorded."""

    def __init__(self, configured: Settings | None = None) -> None:
        self.now = RECEIVED_AT
        self.states = FakeSourceStates()
        self.topic = FakeEventTopic()
        self.outcomes = FakeOutcomes()
        self.service = fake_consumer(
            configured or settings(),
            states=self.states,
            outcomes=self.outcomes,
            topic=self.topic,
            clock=lambda: self.now,
        )

    def requests(self) -> list[ResyncRequest]:
        return [event for event in self.topic.published if isinstance(event, ResyncRequest)]

    def republished(self) -> list[str]:
        return [
            f"{event.source.key}@{event.version}"
            for event in self.topic.published
            if isinstance(event, MembershipSnapshot)
        ]


def request_from(source: Source, at: datetime, *, cluster: str = CLUSTER) -> ResyncRequest:
    return ResyncRequest(
        event_id=uuid4(),
        cluster=cluster,
        requester=Requester(account=source.account, region=source.region),
        requested_at=at,
        reason=ResyncReason.EMPTY_TABLE,
    )


def member(n: int) -> Any:
    return make_member(f"i-{n:017x}", f"54.0.0.{n}/32")


# --- asking -------------------------------------------------------------------------------------------


def test_given_an_empty_table_when_the_first_snapshots_are_stored_then_it_asks_once_on_its_own_topic() -> (
    None
):
    consumer = Consumer()

    consumer.service.apply([make_snapshot(THERE, 4, [member(1)])])
    consumer.service.apply([make_snapshot(THERE, 5, [member(1), member(2)])])

    (request,) = consumer.requests()
    assert (request.requester, request.reason, request.requested_at) == (
        Requester(account=HERE.account, region=HERE.region),
        ResyncReason.EMPTY_TABLE,
        RECEIVED_AT,
    )
    assert consumer.outcomes.counts[Outcome.RESYNC_REQUESTED] == 1


def test_given_a_table_with_states_when_a_new_source_arrives_then_it_does_not_ask() -> None:
    consumer = Consumer()
    consumer.states.store_if_newer(make_snapshot(HERE, 1, [member(1)]))

    consumer.service.apply([make_snapshot(THERE, 1, [member(2)])])

    assert consumer.requests() == []


def test_given_no_topic_of_its_own_region_when_the_table_is_empty_then_it_cannot_ask_and_still_applies() -> (
    None
):
    # Two topics in its region (a cross-account cluster) and no SGMESH_TOPIC_ARN: which one is its own?
    consumer = Consumer(settings(SGMESH_TOPIC_ARN=""))

    report = consumer.service.apply([make_snapshot(THERE, 1, [member(1)])])

    assert (consumer.topic.published, len(report.applied)) == ([], 1)


def test_given_no_topic_setting_then_the_one_peer_topic_of_its_region_is_its_own() -> None:
    only_here = ",".join(topic_arn(s) for s in (HERE, THERE))
    consumer = Consumer(settings(SGMESH_TOPIC_ARN="", SGMESH_PEER_TOPIC_ARNS=only_here))

    consumer.service.apply([make_snapshot(THERE, 1, [member(1)])])

    assert len(consumer.requests()) == 1


def test_a_failed_request_is_logged_and_the_batch_still_applies() -> None:
    consumer = Consumer()
    # SNS refuses the request (acknowledgements still go: a failed one fails the batch, by design)
    consumer.topic.failure = RuntimeError("SNS is down")
    consumer.topic.failing = {RESYNC_REQUEST_TYPE}

    report = consumer.service.apply([make_snapshot(THERE, 1, [member(1)])])

    assert len(report.applied) == 1
    assert consumer.outcomes.counts[Outcome.RESYNC_REQUESTED] == 0


# --- answering ----------------------------------------------------------------------------------------


def stored_everywhere(consumer: Consumer) -> None:
    for source, version in ((HERE, 7), (HERE_TOO, 3), (THERE, 9), (OTHER_ACCOUNT, 2)):
        consumer.states.store_if_newer(make_snapshot(source, version, [member(version)]))


def test_a_request_is_answered_with_the_newest_stored_snapshot_of_each_own_source_on_the_own_topic() -> None:
    consumer = Consumer()
    stored_everywhere(consumer)

    report = consumer.service.apply([request_from(THERE, RECEIVED_AT)])

    # THEN only this region's sources of this account are re-published, as stored (same version)
    assert consumer.republished() == [f"{HERE.key}@7", f"{HERE_TOO.key}@3"]
    assert report.retry == ()
    assert consumer.outcomes.counts[Outcome.RESYNC_ANSWERED] == 2


def test_a_request_made_before_the_last_answer_is_not_answered_again() -> None:
    consumer = Consumer()
    stored_everywhere(consumer)
    consumer.service.apply([request_from(THERE, RECEIVED_AT)])

    consumer.now += timedelta(minutes=5)
    consumer.service.apply([request_from(THERE, RECEIVED_AT - timedelta(seconds=1))])

    assert len(consumer.republished()) == 2


def test_a_storm_of_requests_costs_ten_answers_a_minute() -> None:
    # GIVEN requests arriving every 2 seconds for two minutes, each made just before it arrives
    consumer = Consumer()
    stored_everywhere(consumer)
    for tick in range(60):
        consumer.now = RECEIVED_AT + timedelta(seconds=2 * tick)
        consumer.service.apply([request_from(THERE, consumer.now - timedelta(seconds=1))])

    # THEN each minute saw 10 answers of 2 snapshots; the other requests were dropped and counted
    assert len(consumer.republished()) == 2 * 10 * 2
    assert consumer.outcomes.counts[Outcome.RESYNC_DROPPED] == 60 - 20


def test_a_failed_answer_hands_the_requests_back_for_a_retry() -> None:
    consumer = Consumer()
    stored_everywhere(consumer)
    consumer.topic.failure = RuntimeError("SNS is down")
    request = request_from(THERE, RECEIVED_AT)

    report = consumer.service.apply([request])

    assert report.retry == (request,)
    assert consumer.states.resync_answers(CLUSTER) == []


# --- checks, as for snapshots -------------------------------------------------------------------------


def accept(consumer: Consumer, request: ResyncRequest | dict[str, Any], arn: str) -> Any:
    message = request.to_json() if isinstance(request, ResyncRequest) else json.dumps(request)
    return consumer.service.accept(sns_body(message, arn), "m-1")


def test_a_valid_request_from_its_requesters_own_topic_is_accepted() -> None:
    request = request_from(THERE, RECEIVED_AT)

    assert accept(Consumer(), request, topic_arn(THERE)) == request


@pytest.mark.parametrize(
    ("request_", "arn", "reason"),
    [
        (request_from(THERE, RECEIVED_AT), topic_arn(HERE), "wrong-source"),
        (request_from(THERE, RECEIVED_AT, cluster="other"), topic_arn(THERE), "wrong-cluster"),
        (request_from(THERE, RECEIVED_AT + timedelta(minutes=6)), topic_arn(THERE), "produced-in-future"),
        (
            {**json.loads(request_from(THERE, RECEIVED_AT).to_json()), "schema_version": 2},
            topic_arn(THERE),
            "newer-schema-version",
        ),
        (
            {**json.loads(request_from(THERE, RECEIVED_AT).to_json()), "reason": "curious"},
            topic_arn(THERE),
            "invalid-resync-request",
        ),
    ],
)
def test_a_request_that_fails_a_check_is_rejected_with_its_reason(
    request_: ResyncRequest | dict[str, Any], arn: str, reason: str
) -> None:
    consumer = Consumer()

    with pytest.raises(InvalidRecordError) as rejected:
        accept(consumer, request_, arn)

    assert rejected.value.reason == reason
    assert consumer.outcomes.reasons[Outcome.REJECTED, reason] == 1


def test_a_request_older_than_the_maximum_age_is_dropped_unanswered() -> None:
    consumer = Consumer()
    stored_everywhere(consumer)

    consumer.service.apply([request_from(THERE, RECEIVED_AT - timedelta(hours=7))])

    assert (consumer.republished(), consumer.outcomes.counts[Outcome.EXPIRED]) == ([], 1)


def test_a_request_reads_back_as_itself_and_a_snapshot_as_a_snapshot() -> None:
    request = request_from(THERE, RECEIVED_AT)
    snapshot = make_snapshot(THERE, 1, [member(1)])

    assert (parse_event(request.to_json()), parse_event(snapshot.to_json())) == (request, snapshot)
