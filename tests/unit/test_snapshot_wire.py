"""How a snapshot travels: as a version-1 document whenever version 1 can say it (so consumers of the
previous release keep reading it), members packed when the plain document would not fit one delivery,
and every form read back to the same snapshot."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import pytest

from schemas.errors import InvalidRecordError, SnapshotTooLargeError
from schemas.events import (
    DELIVERY_LIMIT,
    MAX_MEMBERS,
    PACKED_MEMBERS,
    PLAIN_LIMIT,
    SCHEMA_VERSION,
    Cause,
    CauseKind,
    Member,
    MembershipSnapshot,
    Source,
    pack_members,
    parse_snapshot,
)
from tests.fakes import largest_snapshot, make_snapshot
from tests.support import version_1
from tests.support.golden import golden

SOURCE = Source(account="111111111111", region="eu-west-1", group="cassandra-a")
USUAL = Member(
    instance_id="i-0123456789abcdef0",
    public_ipv4="54.1.2.3/32",
    private_ipv4="10.0.0.5/32",
    ipv6=("2600:1f18:abcd::1/128",),
    availability_zone="eu-west-1a",
    lifecycle_state="InService",
)
# About 1.5 KB of SNS's own fields around the escaped Message (Type, MessageId, TopicArn, Timestamp,
# SignatureVersion, Signature, SigningCertURL, UnsubscribeURL, MessageAttributes): 4 KiB bounds them.
ENVELOPE_FIELDS = 4096


def document(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def envelope_bytes(message: str) -> int:
    """What SQS stores of an SNS delivery of `message` (raw delivery off), at most."""
    return len(json.dumps(message).encode()) + ENVELOPE_FIELDS


# --- the previous release's consumers -------------------------------------------------------------


def test_a_snapshot_version_1_can_say_is_written_as_version_1_and_the_previous_release_applies_it() -> None:
    snapshot = make_snapshot(SOURCE, 1_714_564_800_000, [USUAL], cause=Cause(kind=CauseKind.TERMINATING))

    text = snapshot.to_json()

    assert document(text)["schema_version"] == 1
    older = version_1.read(text)
    assert isinstance(older, version_1.MembershipSnapshot)
    assert older.model_dump(mode="json") == snapshot.model_dump(mode="json") | {"schema_version": 1}
    assert parse_snapshot(text) == snapshot


@pytest.mark.parametrize(
    "snapshot",
    [
        make_snapshot(SOURCE, 9, cause=Cause(kind=CauseKind.RETIRED)),
        make_snapshot(SOURCE, 9, [Member(instance_id="i-0123456789abcdef0", private_ipv4="11.0.0.5/32")]),
        make_snapshot(SOURCE, 9, [Member(instance_id="i-0123456789abcdef0", ipv6=("fd00:ec2::5/128",))]),
        largest_snapshot(),
    ],
    ids=["a retirement", "a private address outside RFC 1918/6598", "a unique local IPv6", "packed members"],
)
def test_what_only_version_2_can_say_is_written_as_version_2_and_the_previous_release_rejects_it_by_version(
    snapshot: MembershipSnapshot,
) -> None:
    text = snapshot.to_json()

    assert document(text)["schema_version"] == SCHEMA_VERSION == 2
    # Never misread: an older consumer rejects it for its version (newer-schema-version: retried, then
    # the DLQ), and keeps the source's previous state until it is upgraded and the next true-up comes.
    assert version_1.read(text) == "newer-schema-version"
    assert parse_snapshot(text) == snapshot


def test_the_golden_version_1_delivery_reads_through_the_step_into_the_current_model() -> None:
    (record,) = golden("sqs_snapshot_batch")["Records"]
    message = json.loads(record["body"])["Message"]
    assert document(message)["schema_version"] == 1

    snapshot = parse_snapshot(message)

    assert snapshot.schema_version == SCHEMA_VERSION
    assert snapshot.model_dump(mode="json", exclude_none=True) == document(message) | {
        "schema_version": SCHEMA_VERSION
    }


def test_packed_members_in_a_version_1_document_mean_nothing_as_they_meant_nothing_to_version_1() -> None:
    # GIVEN a version-1 document with no members but a packed field its readers ignored
    forged = document(make_snapshot(SOURCE, 9, [USUAL]).to_json())
    forged[PACKED_MEMBERS] = pack_members(forged.pop("members"))
    assert forged["schema_version"] == 1

    # WHEN it is read THEN it is rejected as a version-1 reader rejects it: it has no members
    with pytest.raises(InvalidRecordError, match="members: Field required"):
        parse_snapshot(json.dumps(forged))


# --- the documented maximum ------------------------------------------------------------------------


def test_the_documented_maximum_with_every_field_and_4_ipv6_addresses_fits_one_publish_and_delivery() -> None:
    # GIVEN 1,000 members, each with every field and 4 IPv6 addresses, the longest names around them
    snapshot = largest_snapshot()
    assert len(snapshot.members) == MAX_MEMBERS
    plain = snapshot.model_dump_json(exclude_none=True)
    assert len(plain) > DELIVERY_LIMIT, "the plain document must not fit, or this proves nothing"

    # WHEN it is written
    text = snapshot.to_json()

    # THEN the members are packed, the Message fits SNS's limit and its SQS envelope the queue's
    assert PACKED_MEMBERS in document(text)
    assert "members" not in document(text)
    assert len(text.encode()) < DELIVERY_LIMIT / 2
    assert envelope_bytes(text) < DELIVERY_LIMIT
    # AND it reads back to the same snapshot
    assert parse_snapshot(text) == snapshot


def test_a_snapshot_is_written_plain_as_long_as_its_delivery_fits() -> None:
    snapshot = largest_snapshot(members=400)
    text = snapshot.to_json()

    assert "members" in document(text)
    assert len(json.dumps(text)) <= PLAIN_LIMIT
    assert envelope_bytes(text) < DELIVERY_LIMIT


def test_a_snapshot_no_delivery_can_carry_even_packed_is_refused_naming_its_source_and_size() -> None:
    # 1,000 members of 40 IPv6 addresses each: nothing AWS assigns, but the bound the code must keep
    snapshot = largest_snapshot(ipv6_per_member=40)

    with pytest.raises(SnapshotTooLargeError, match=r"111111111111/ap-southeast-2/g+ with 1000 members"):
        snapshot.to_json()


# --- packed members that are not what they claim ----------------------------------------------------


def packed_document(packed: object) -> str:
    snapshot = document(make_snapshot(SOURCE, 9, cause=Cause(kind=CauseKind.RETIRED)).to_json())
    del snapshot["members"]
    return json.dumps({**snapshot, PACKED_MEMBERS: packed})


def gzip_of(data: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return base64.b64encode(compressor.compress(data) + compressor.flush()).decode()


@pytest.mark.parametrize(
    ("packed", "problem"),
    [
        ("not base64!", "not base64 of a gzip-compressed JSON array"),
        (base64.b64encode(b"not gzip").decode(), "not base64 of a gzip-compressed JSON array"),
        (gzip_of(b"[{not json"), "not base64 of a gzip-compressed JSON array"),
        (gzip_of(b" " * (5 * 1024 * 1024) + b"[]"), "unpacks to more than"),
        (42, "not a string"),
    ],
    ids=["not base64", "not gzip", "not JSON", "a bomb", "not a string"],
)
def test_packed_members_that_do_not_unpack_are_rejected_naming_the_field(
    packed: object, problem: str
) -> None:
    with pytest.raises(InvalidRecordError, match=f"{PACKED_MEMBERS}: .*{problem}"):
        parse_snapshot(packed_document(packed))


def test_packed_members_are_validated_like_plain_ones() -> None:
    bad = gzip_of(json.dumps([{"instance_id": "i-0123456789abcdef0", "public_ipv4": "0.0.0.0/0"}]).encode())

    with pytest.raises(InvalidRecordError, match=r"members\.0\.public_ipv4.*'0\.0\.0\.0/0'"):
        parse_snapshot(packed_document(bad))


def test_a_document_with_members_both_plain_and_packed_is_rejected() -> None:
    snapshot = document(make_snapshot(SOURCE, 9, [USUAL], cause=Cause(kind=CauseKind.RETIRED)).to_json())

    with pytest.raises(InvalidRecordError, match="members and members_gzip are both set"):
        parse_snapshot(json.dumps({**snapshot, PACKED_MEMBERS: pack_members([])}))
