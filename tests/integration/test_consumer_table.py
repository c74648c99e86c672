"""The consumer's own records in its DynamoDB table (moto): what storing a snapshot did, holds on the
rules of unknown sources, forgotten states, and recent resync answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest

from cloud.dynamodb import Table
from schemas.events import Source
from schemas.ledger import Stored
from sgmesh.local.embedded import EndpointSession
from sgmesh.local.stack import create_table
from tests.fakes import CLUSTER, RECEIVED_AT, make_member, make_snapshot

REGION = "eu-west-1"
EAST = Source(account="111111111111", region="us-east-1", group="cassandra")
WEST = Source(account="111111111111", region="us-west-2", group="cassandra")


@pytest.fixture
def table(aws: str) -> Table:
    create_table(EndpointSession(aws), REGION, "sgmesh-test")
    return Table(boto3.client("dynamodb", region_name=REGION), "sgmesh-test")


def items(partition: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = boto3.client("dynamodb", region_name=REGION).query(
        TableName="sgmesh-test",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": partition}},
    )["Items"]
    return found


def test_storing_tells_a_first_state_from_a_newer_one_and_a_stale_one(table: Table) -> None:
    member = [make_member("i-00000000000000001", "54.0.0.1/32")]

    outcomes = [table.store_if_newer(make_snapshot(EAST, version, member)) for version in (3, 4, 4, 2)]

    assert outcomes == [Stored.FIRST, Stored.NEWER, Stored.STALE, Stored.STALE]


def test_forgotten_states_are_gone_and_the_others_stay(table: Table) -> None:
    for source in (EAST, WEST):
        table.store_if_newer(make_snapshot(source, 1, []))

    table.forget_states(CLUSTER, [WEST.key])

    assert [state.source for state in table.stored_states(CLUSTER)] == [EAST]


def test_a_hold_starts_once_expires_by_ttl_and_clears(table: Table) -> None:
    later = RECEIVED_AT + timedelta(minutes=5)

    table.record_holds(CLUSTER, start={"a", "b"}, clear=set(), at=RECEIVED_AT, keep_for=timedelta(hours=12))
    # Another consumer starting the same hold later keeps the first time; clearing one leaves the other.
    table.record_holds(CLUSTER, start={"a"}, clear={"b"}, at=later, keep_for=timedelta(hours=12))

    assert table.holds(CLUSTER) == {"a": RECEIVED_AT}
    (item,) = items(f"consumer#{CLUSTER}")
    assert int(item["expires_at"]["N"]) == int((RECEIVED_AT + timedelta(hours=12)).timestamp())
    assert table.stored_states(CLUSTER) == []


def test_recent_resync_answers_read_back_newest_first_beside_the_holds(table: Table) -> None:
    table.record_holds(CLUSTER, start={"a"}, clear=set(), at=RECEIVED_AT, keep_for=timedelta(hours=1))
    answers = [RECEIVED_AT + timedelta(seconds=n) for n in (10, 30, 20)]

    table.record_resync_answers(CLUSTER, answers)

    assert table.resync_answers(CLUSTER) == sorted(answers, reverse=True)
    assert table.holds(CLUSTER) == {"a": RECEIVED_AT}
