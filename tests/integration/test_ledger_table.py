"""The producer's ledger in DynamoDB (moto): claims from the version read to the one claimed, publishes
recorded only forward, and a retirement's time and TTL set once and cleared when the group returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from cloud.dynamodb import Table
from schemas.ledger import EPOCH, RETIREMENT_PERIOD, LedgerEntry
from sgmesh.local.stack import create_table

CLUSTER, GROUP = "demo", "cassandra"
AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
V = 1_767_605_400_000


@pytest.fixture
def table(aws: str) -> Table:
    create_table(boto3.session.Session(), "us-east-1", "sgmesh-demo")
    return Table(boto3.client("dynamodb", region_name="us-east-1"), "sgmesh-demo")


def item(table: Table) -> dict[str, Any]:
    """The group's ledger item as DynamoDB stores it."""
    found: dict[str, Any] = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName="sgmesh-demo", Key={"pk": {"S": f"producer#{CLUSTER}"}, "sk": {"S": GROUP}}
    )["Item"]
    return found


def test_a_claim_moves_from_the_version_read_to_the_hybrid_one_and_loses_when_another_moved_it(
    table: Table,
) -> None:
    assert table.claim_version(CLUSTER, GROUP, 0, V)
    assert not table.claim_version(CLUSTER, GROUP, 0, V + 1), "the version read is no longer stored"
    assert table.claim_version(CLUSTER, GROUP, V, V + 1)
    assert table.ledger(CLUSTER) == {GROUP: LedgerEntry(claimed=V + 1)}


def test_a_retirement_records_its_first_time_and_a_ttl_at_the_end_of_its_period(table: Table) -> None:
    table.claim_version(CLUSTER, GROUP, 0, V)
    table.mark_published(CLUSTER, GROUP, V, "empty", at=AT, retired=True)
    table.claim_version(CLUSTER, GROUP, V, V + 1)
    table.mark_published(CLUSTER, GROUP, V + 1, "empty", at=AT + timedelta(minutes=15), retired=True)

    # THEN the first retirement's time is kept, and DynamoDB's TTL forgets the group when the period ends
    assert table.ledger(CLUSTER)[GROUP].retired_at == AT
    assert int(item(table)["expires_at"]["N"]) == (AT + RETIREMENT_PERIOD - EPOCH) // timedelta(seconds=1)


def test_a_group_published_again_as_a_source_is_no_longer_retired_nor_forgotten(table: Table) -> None:
    table.claim_version(CLUSTER, GROUP, 0, V)
    table.mark_published(CLUSTER, GROUP, V, "empty", at=AT, retired=True)
    table.claim_version(CLUSTER, GROUP, V, V + 1)

    table.mark_published(CLUSTER, GROUP, V + 1, "members", at=AT, retired=False)

    assert table.ledger(CLUSTER) == {
        GROUP: LedgerEntry(claimed=V + 1, published=V + 1, published_digest="members", retired_at=None)
    }
    assert "expires_at" not in item(table)


def test_an_older_publish_recorded_late_never_moves_the_record_back(table: Table) -> None:
    table.claim_version(CLUSTER, GROUP, 0, V + 1)
    table.mark_published(CLUSTER, GROUP, V + 1, "newer", at=AT, retired=False)

    table.mark_published(CLUSTER, GROUP, V, "older", at=AT, retired=True)

    assert table.ledger(CLUSTER)[GROUP] == LedgerEntry(
        claimed=V + 1, published=V + 1, published_digest="newer"
    )
