"""The membership snapshot (v2): strict, frozen, forward compatible, and loud about what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.errors import InvalidRecordError
from schemas.events import (
    MAX_MEMBERS,
    Cause,
    CauseKind,
    Member,
    MembershipSnapshot,
    Source,
    parse_snapshot,
)
from tests.fakes import make_snapshot

SOURCE = Source(account="111111111111", region="eu-west-1", group="cassandra-a")
SNS_MESSAGE_LIMIT = 256 * 1024


def full_snapshot() -> MembershipSnapshot:
    return make_snapshot(
        SOURCE,
        7,
        [
            Member(
                instance_id="i-0123456789abcdef0",
                public_ipv4="54.1.2.3/32",
                private_ipv4="10.0.0.5/32",
                ipv6=("2600:1f18:abcd::1/128",),
                availability_zone="eu-west-1a",
                lifecycle_state="InService",
            ),
            Member(instance_id="i-0123456789abcdef1", public_ipv4="54.1.2.4/32"),
        ],
        cause=Cause(
            kind=CauseKind.LAUNCHING,
            instance_id="i-0123456789abcdef1",
            lifecycle_hook="sgmesh-launch",
            lifecycle_token="6b1f7f4c-2a8e-4c8e-9d3c-3f2f0c8b1a11",
        ),
    )


def snapshot_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(full_snapshot().to_json())
    return document


def rejection(document: dict[str, Any]) -> str:
    with pytest.raises(InvalidRecordError) as raised:
        parse_snapshot(json.dumps(document))
    return str(raised.value)


def test_given_valid_snapshot_when_serialised_and_parsed_then_equal() -> None:
    snapshot = full_snapshot()

    assert parse_snapshot(snapshot.to_json()) == snapshot
    assert parse_snapshot(snapshot.to_json().encode()) == snapshot


def test_given_snapshot_json_then_it_carries_schema_identity() -> None:
    document = snapshot_document()

    assert document["type"] == "sgmesh.membership-snapshot"
    assert document["schema_version"] == 1


def test_given_unknown_fields_at_every_level_when_parsed_then_ignored() -> None:
    document = snapshot_document()
    document["added_in_v1_1"] = {"anything": [1, 2]}
    document["source"]["partition"] = "aws"
    document["cause"]["requested_by"] = "operator"
    document["members"][0]["instance_type"] = "m7g.large"

    assert parse_snapshot(json.dumps(document)) == full_snapshot()


@pytest.mark.parametrize("address", ["0.0.0.0/0", "54.1.2.0/24", "10.0.0.5/32"])
def test_given_member_public_address_not_one_public_host_when_parsed_then_field_and_value_named(
    address: str,
) -> None:
    document = snapshot_document()
    document["members"][1]["public_ipv4"] = address

    message = rejection(document)

    assert "members.1.public_ipv4" in message
    assert repr(address) in message


def test_given_member_private_address_in_any_vpc_range_when_parsed_then_accepted() -> None:
    # Version 2 widened the field: AWS lets a VPC use any range (version 1 rejected this one).
    document = snapshot_document()
    document["members"][0]["private_ipv4"] = "11.0.3.7/32"

    assert parse_snapshot(json.dumps(document)).members[0].private_ipv4 == "11.0.3.7/32"


def test_given_member_private_address_that_no_host_has_when_parsed_then_rejected() -> None:
    document = snapshot_document()
    document["members"][0]["private_ipv4"] = "127.0.0.1/32"

    message = rejection(document)

    assert "members.0.private_ipv4" in message
    assert "'127.0.0.1/32'" in message


def test_given_member_ipv6_range_when_parsed_then_rejected() -> None:
    document = snapshot_document()
    document["members"][0]["ipv6"] = ["2600:1f18::/56"]

    assert "members.0.ipv6.0" in rejection(document)


def test_given_instance_listed_twice_when_parsed_then_rejected_naming_it() -> None:
    document = snapshot_document()
    document["members"][1]["instance_id"] = document["members"][0]["instance_id"]

    message = rejection(document)

    assert "i-0123456789abcdef0" in message
    assert "twice" in message


def test_given_more_than_max_members_when_parsed_then_rejected() -> None:
    document = snapshot_document()
    document["members"] = [{"instance_id": f"i-{n:017x}"} for n in range(MAX_MEMBERS + 1)]

    message = rejection(document)

    assert "members" in message
    assert str(MAX_MEMBERS) in message


def test_given_exactly_max_members_when_parsed_then_accepted() -> None:
    document = snapshot_document()
    document["members"] = [{"instance_id": f"i-{n:017x}"} for n in range(MAX_MEMBERS)]

    assert len(parse_snapshot(json.dumps(document)).members) == MAX_MEMBERS


def test_given_max_members_with_every_field_when_serialised_then_fits_one_sns_message() -> None:
    members = [
        Member(
            instance_id=f"i-{n:017x}",
            public_ipv4=f"54.{n // 250}.{n % 250}.1/32",
            private_ipv4=f"10.{n // 250}.{n % 250}.1/32",
            ipv6=(f"2600:1f18:abcd:{n:x}:ffff:ffff:ffff:ffff/128",),
            availability_zone="ap-southeast-2c",
            lifecycle_state="Terminating:Proceed",
        )
        for n in range(MAX_MEMBERS)
    ]
    snapshot = make_snapshot(
        Source(account="111111111111", region="ap-southeast-2", group="g" * 255), 1, members
    )

    assert len(snapshot.to_json().encode()) < SNS_MESSAGE_LIMIT


def test_given_naive_produced_at_when_parsed_then_rejected_naming_it() -> None:
    document = snapshot_document()
    document["produced_at"] = "2024-05-01T12:00:00"

    message = rejection(document)

    assert "produced_at" in message
    assert "2024-05-01T12:00:00" in message


def test_given_schema_version_3_when_parsed_then_rejected_naming_it() -> None:
    document = snapshot_document()
    document["schema_version"] = 3

    message = rejection(document)

    assert "schema_version" in message
    assert "3" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "7"),
        ("version", 0),
        ("members", "i-0123456789abcdef0"),
        ("cluster", 42),
        ("event_id", "not-a-uuid"),
        ("type", "sgmesh.something-else"),
    ],
)
def test_given_field_of_wrong_type_when_parsed_then_rejected_naming_field_and_value(
    field: str, value: object
) -> None:
    document = snapshot_document()
    document[field] = value

    message = rejection(document)

    assert f"{field}:" in message
    assert repr(value) in message


def test_given_source_with_bad_account_when_parsed_then_path_is_named() -> None:
    document = snapshot_document()
    document["source"]["account"] = "1234"

    message = rejection(document)

    assert "source.account" in message
    assert "'1234'" in message


@pytest.mark.parametrize("raw", ["", "not json", "[]", "null", '{"type": "sgmesh.membership-snapshot"'])
def test_given_not_a_snapshot_document_when_parsed_then_invalid_record(raw: str) -> None:
    with pytest.raises(InvalidRecordError, match="not a valid membership snapshot"):
        parse_snapshot(raw)


def test_given_snapshot_when_assigned_then_refused() -> None:
    snapshot = full_snapshot()

    with pytest.raises(ValidationError, match="frozen"):
        snapshot.version = 8
    with pytest.raises(ValidationError, match="frozen"):
        snapshot.members[0].public_ipv4 = "54.9.9.9/32"
    with pytest.raises(ValidationError, match="frozen"):
        snapshot.source.group = "other"
