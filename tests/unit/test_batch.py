"""Partial batch responses: poison records fail alone, and a failed apply fails every good record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from batches.sqs import WholeBatchProcessor
from consumers.service import ApplyService
from schemas.errors import RuleConflictError
from schemas.events import Event, MembershipSnapshot, Source
from schemas.rules import Permission
from schemas.settings import Settings
from tests.fakes import (
    CLUSTER,
    FakeAuditLog,
    FakeSecurityGroups,
    FakeSourceStates,
    fake_consumer,
    make_member,
    make_snapshot,
    sns_body,
    topic_arn,
)

EU = Source(account="111111111111", region="eu-west-1", group="cassandra-a")
US = Source(account="222222222222", region="us-east-1", group="cassandra-b")
GROUP_ID = "sg-0aaaaaaaaaaaaaaa1"
QUEUE_ARN = "arn:aws:sqs:eu-west-1:111111111111:sgmesh-prod"
LOGGER = Logger(service="test")


def sqs_event(*records: tuple[str, str]) -> dict[str, Any]:
    """An SQS event source batch of (message id, body)."""
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"receipt-{message_id}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1714564800000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1714564800001",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "eu-west-1",
            }
            for message_id, body in records
        ]
    }


def new_service() -> tuple[ApplyService[Any], FakeSourceStates, FakeSecurityGroups]:
    settings = Settings.from_env(
        {
            "SGMESH_CLUSTER": CLUSTER,
            "SGMESH_TABLE_NAME": "sgmesh-prod",
            "AWS_REGION": "eu-west-1",
            "SGMESH_SECURITY_GROUP_IDS": GROUP_ID,
            "SGMESH_PORTS": "tcp:7000",
            "SGMESH_PEER_TOPIC_ARNS": f"{topic_arn(EU)},{topic_arn(US)}",
        }
    )
    states, groups = FakeSourceStates(), FakeSecurityGroups(GROUP_ID)
    audit = FakeAuditLog()
    service = fake_consumer(settings, states=states, groups=groups, audit=audit)
    return service, states, groups


def good(source: Source, version: int, address: str) -> str:
    snapshot = make_snapshot(source, version, [make_member(f"i-{version:017x}", address)])
    return sns_body(snapshot.to_json(), topic_arn(source))


POISON = {
    "not-json": "{not json",
    "raw-delivery": make_snapshot(EU, 1).to_json(),
    "wrong-cluster": sns_body(make_snapshot(EU, 1, cluster="staging").to_json(), topic_arn(EU)),
    "stranger-topic": sns_body(make_snapshot(EU, 1).to_json(), "arn:aws:sns:eu-west-1:111111111111:stranger"),
}


def run(
    service: ApplyService[Any],
    event: dict[str, Any],
    apply: Callable[[Sequence[MembershipSnapshot]], object] | None = None,
) -> list[str]:
    """The consumer handler's wiring: accept each record, apply the accepted ones once."""

    def accept(record: SQSRecord) -> Event:
        return service.accept(record.body, record.message_id)

    def act(snapshots: Sequence[MembershipSnapshot]) -> Sequence[MembershipSnapshot]:
        (apply or service.apply)(snapshots)
        return ()

    response = process_partial_response(
        event=event, record_handler=accept, processor=WholeBatchProcessor(act, LOGGER)
    )
    return [str(failure["itemIdentifier"]) for failure in response["batchItemFailures"]]


def test_given_act_returns_items_to_retry_then_exactly_their_records_fail() -> None:
    service, _states, _groups = new_service()
    event = sqs_event(("keep", good(EU, 1, "54.1.0.1/32")), ("retry", good(US, 1, "54.2.0.1/32")))

    def act(snapshots: Sequence[MembershipSnapshot]) -> Sequence[MembershipSnapshot]:
        return [snapshot for snapshot in snapshots if snapshot.source == US]

    processor = WholeBatchProcessor(act, LOGGER)
    response = process_partial_response(
        event=event,
        record_handler=lambda record: service.accept(record.body, record.message_id),
        processor=processor,
    )

    assert response["batchItemFailures"] == [{"itemIdentifier": "retry"}]


def test_given_poison_among_good_records_then_only_poison_fails_and_good_ones_apply() -> None:
    service, states, groups = new_service()
    event = sqs_event(
        ("good-eu", good(EU, 3, "54.1.0.1/32")),
        ("not-json", POISON["not-json"]),
        ("good-us", good(US, 7, "54.2.0.1/32")),
        ("wrong-cluster", POISON["wrong-cluster"]),
    )

    failures = run(service, event)

    assert failures == ["not-json", "wrong-cluster"]
    assert states.versions(CLUSTER) == {EU.key: 3, US.key: 7}
    assert {rule.permission for rule in groups.rules(GROUP_ID)} == {
        Permission("tcp", 7000, 7000, "54.1.0.1/32"),
        Permission("tcp", 7000, 7000, "54.2.0.1/32"),
    }


def test_given_good_records_when_apply_raises_then_every_record_is_reported_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, states, _groups = new_service()
    applied: list[Sequence[MembershipSnapshot]] = []

    def apply_fails(snapshots: Sequence[MembershipSnapshot]) -> None:
        applied.append(snapshots)
        raise RuleConflictError("groups kept changing")

    event = sqs_event(
        ("good-eu", good(EU, 3, "54.1.0.1/32")),
        ("raw-delivery", POISON["raw-delivery"]),
        ("good-us", good(US, 7, "54.2.0.1/32")),
    )

    failures = run(service, event, apply_fails)

    assert sorted(failures) == ["good-eu", "good-us", "raw-delivery"]
    assert len(applied) == 1
    assert states.writes == 0
    (logged,) = [
        record
        for record in caplog.records
        if record.levelname == "ERROR" and "applying" in record.getMessage()
    ]
    assert vars(logged)["message_ids"] == ["good-eu", "good-us"]
    assert "groups kept changing" in vars(logged)["error"]


def test_given_only_poison_records_then_all_reported_failed_without_raising_and_nothing_applied() -> None:
    service, _states, _groups = new_service()
    applied: list[Sequence[MembershipSnapshot]] = []

    failures = run(service, sqs_event(*POISON.items()), applied.append)

    assert failures == list(POISON)
    assert applied == []


def test_given_several_versions_of_a_source_in_one_batch_then_applied_once_with_the_newest_winning() -> None:
    service, states, groups = new_service()
    calls: list[Sequence[MembershipSnapshot]] = []

    def apply(snapshots: Sequence[MembershipSnapshot]) -> object:
        calls.append(snapshots)
        return service.apply(snapshots)

    event = sqs_event(
        ("v2", good(EU, 2, "54.1.0.2/32")),
        ("v4", good(EU, 4, "54.1.0.4/32")),
        ("v1", good(EU, 1, "54.1.0.1/32")),
        ("v4-again", good(EU, 4, "54.1.0.4/32")),
    )

    assert run(service, event, apply) == []
    assert [len(batch) for batch in calls] == [4]
    assert states.versions(CLUSTER) == {EU.key: 4}
    assert states.writes == 1
    assert {rule.permission for rule in groups.rules(GROUP_ID)} == {
        Permission("tcp", 7000, 7000, "54.1.0.4/32")
    }
    assert groups.calls == [("authorize", GROUP_ID)]


def test_given_all_good_records_then_no_failures() -> None:
    service, _states, _groups = new_service()

    failures = run(service, sqs_event(("good-eu", good(EU, 1, "54.1.0.1/32"))))

    assert failures == []


class FunctionDied(BaseException):
    """The Lambda sandbox died between two records (as the chaos harness's crashes do)."""


def test_given_the_function_dies_mid_batch_then_nothing_is_acted_on_and_the_death_propagates() -> None:
    service, states, _groups = new_service()
    acted: list[Sequence[MembershipSnapshot]] = []
    event = sqs_event(("good-eu", good(EU, 3, "54.1.0.1/32")), ("good-us", good(US, 7, "54.2.0.1/32")))

    def accept_then_die(record: SQSRecord) -> Event:
        if record.message_id == "good-us":
            raise FunctionDied
        return service.accept(record.body, record.message_id)

    def act(snapshots: Sequence[MembershipSnapshot]) -> Sequence[MembershipSnapshot]:
        acted.append(snapshots)
        return ()

    with pytest.raises(FunctionDied):
        process_partial_response(
            event=event, record_handler=accept_then_die, processor=WholeBatchProcessor(act, LOGGER)
        )

    assert acted == []
    assert states.writes == 0
