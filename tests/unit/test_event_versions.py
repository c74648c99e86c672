"""The upcasting seam: an older snapshot version is read through its registered steps into the current
model, a newer one is rejected with its own reason, and the current version reads as it always did."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers.metrics import Outcome
from schemas.errors import InvalidRecordError
from schemas.events import (
    NEWER_SCHEMA_VERSION,
    SCHEMA_VERSION,
    UNKNOWN_SCHEMA_VERSION,
    UPCASTERS,
    Cause,
    CauseKind,
    Member,
    MembershipSnapshot,
    Source,
    Upcaster,
    parse_snapshot,
    upcast,
)
from schemas.settings import Settings
from tests.fakes import CLUSTER, FakeOutcomes, fake_consumer, make_snapshot, sns_body, topic_arn

SOURCE = Source(account="111111111111", region="eu-west-1", group="cassandra-a")
EVENT_ID = "5f0c6a56-7d1e-4c1b-9a43-0d2b8c7e9a01"
PRODUCED_AT = "2024-05-01T12:00:00Z"


def hypothetical_v0(**overrides: Any) -> dict[str, Any]:
    """A shape sgmesh never published, invented for these tests: the source as one "account/region/
    group" string, the cause as a bare kind, members as instance id -> public address."""
    return {
        "type": "sgmesh.membership-snapshot",
        "schema_version": 0,
        "event_id": EVENT_ID,
        "cluster": CLUSTER,
        "source": SOURCE.key,
        "version": 7,
        "produced_at": PRODUCED_AT,
        "cause": "trueup",
        "members": {"i-0123456789abcdef0": "54.1.2.3/32", "i-0123456789abcdef1": "54.1.2.4/32"},
        **overrides,
    }


def v0_to_v1(document: dict[str, Any]) -> dict[str, Any]:
    account, region, group = document["source"].split("/")
    return {
        **document,
        "source": {"account": account, "region": region, "group": group},
        "cause": {"kind": document["cause"]},
        "members": [
            {"instance_id": instance_id, "public_ipv4": address}
            for instance_id, address in document["members"].items()
        ],
    }


def expected_v1() -> MembershipSnapshot:
    """What the hypothetical v0 document says, written as the current model."""
    return MembershipSnapshot.model_validate_json(
        json.dumps(
            {
                "event_id": EVENT_ID,
                "cluster": CLUSTER,
                "source": SOURCE.model_dump(),
                "version": 7,
                "produced_at": PRODUCED_AT,
                "cause": {"kind": "trueup"},
                "members": [
                    {"instance_id": "i-0123456789abcdef0", "public_ipv4": "54.1.2.3/32"},
                    {"instance_id": "i-0123456789abcdef1", "public_ipv4": "54.1.2.4/32"},
                ],
            }
        )
    )


def never_called(document: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError(f"an upcaster ran on {document}")


def rejection(document: dict[str, Any], upcasters: dict[int, Upcaster]) -> InvalidRecordError:
    with pytest.raises(InvalidRecordError) as raised:
        parse_snapshot(json.dumps(document), upcasters)
    return raised.value


def test_given_an_older_version_with_a_registered_step_when_parsed_then_it_reads_as_the_current_model() -> (
    None
):
    # GIVEN a version-0 snapshot, and a step from version 0 to 1 registered before the product's
    document = hypothetical_v0()

    # WHEN it is parsed through the seam
    snapshot = parse_snapshot(json.dumps(document), {0: v0_to_v1, **UPCASTERS})

    # THEN it is the current model, saying what the old document said
    assert snapshot == expected_v1()
    assert snapshot.schema_version == SCHEMA_VERSION
    assert snapshot.cause == Cause(kind=CauseKind.TRUEUP)
    assert snapshot.members[0] == Member(instance_id="i-0123456789abcdef0", public_ipv4="54.1.2.3/32")


def test_given_an_older_version_without_its_step_when_parsed_then_rejected_with_its_own_reason() -> None:
    error = rejection(hypothetical_v0(), {})

    assert error.reason == UNKNOWN_SCHEMA_VERSION
    assert "schema_version: 0 has no upcaster to 1" in str(error)


def test_given_the_current_version_when_parsed_then_no_upcaster_runs() -> None:
    # A retirement is one thing only the current version can say, so it is written in it.
    snapshot = make_snapshot(SOURCE, 3, cause=Cause(kind=CauseKind.RETIRED))
    assert json.loads(snapshot.to_json())["schema_version"] == SCHEMA_VERSION

    assert parse_snapshot(snapshot.to_json(), {0: never_called, 1: never_called}) == snapshot


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 99])
def test_given_a_newer_version_when_parsed_then_rejected_naming_both_versions_even_with_steps_registered(
    version: int,
) -> None:
    document = json.loads(make_snapshot(SOURCE, 3).to_json()) | {"schema_version": version}

    error = rejection(document, {0: never_called, 1: never_called})

    assert error.reason == NEWER_SCHEMA_VERSION
    assert f"schema_version: {version} is newer than {SCHEMA_VERSION}" in str(error)
    assert "upgrade every region's consumer before any producer" in str(error)


def test_given_an_upcast_document_that_breaks_a_rule_then_it_is_rejected_like_any_snapshot() -> None:
    # GIVEN an old document carrying a private address as a member's public one
    document = hypothetical_v0(members={"i-0123456789abcdef0": "10.0.0.5/32"})

    # WHEN it is upcast and validated THEN the strict model still refuses it, naming field and value
    error = rejection(document, {0: v0_to_v1, **UPCASTERS})

    assert error.reason == "invalid-snapshot"
    assert "members.0.public_ipv4" in str(error)
    assert "'10.0.0.5/32'" in str(error)


def test_given_an_old_document_its_step_cannot_read_then_it_is_rejected_not_crashed() -> None:
    document = hypothetical_v0()
    del document["members"]

    error = rejection(document, {0: v0_to_v1})

    assert error.reason == "invalid-snapshot"
    assert "schema_version: 0 document could not be upcast to 1" in str(error)
    assert "'members'" in str(error)


@pytest.mark.parametrize(
    "document",
    [
        {"type": "something-else", "schema_version": 0},
        {"type": "sgmesh.membership-snapshot", "schema_version": "0"},
        {"type": "sgmesh.membership-snapshot", "schema_version": False},
    ],
    ids=["another type", "version as a string", "version as a boolean"],
)
def test_given_no_integer_version_of_a_snapshot_then_no_step_runs_and_the_fields_are_named(
    document: dict[str, Any],
) -> None:
    error = rejection(document, {0: never_called})

    assert error.reason == "invalid-snapshot"
    assert "not a valid membership snapshot" in str(error)
    assert "event_id: Field required" in str(error)


def test_a_chain_of_steps_is_applied_in_order_each_to_the_version_it_was_written_for() -> None:
    # GIVEN pretend versions 2 and 3 (sgmesh has neither), each step recording what it saw
    seen: list[int] = []

    def step(adds: str) -> Upcaster:
        def apply(document: dict[str, Any]) -> dict[str, Any]:
            seen.append(document["schema_version"])
            return {**document, adds: document["schema_version"]}

        return apply

    # WHEN a version-1 document is brought up to version 3
    upcast_document = upcast({"schema_version": 1}, {2: step("from_2"), 1: step("from_1")}, target=3)

    # THEN each step ran once, oldest first, and the document declares the version it reached
    assert seen == [1, 2]
    assert upcast_document == {"schema_version": 3, "from_1": 1, "from_2": 2}


def test_a_missing_step_in_the_middle_of_a_chain_is_named() -> None:
    with pytest.raises(InvalidRecordError, match="schema_version: 2 has no upcaster to 3") as raised:
        upcast({"schema_version": 1}, {1: dict, 3: dict}, target=4)
    assert raised.value.reason == UNKNOWN_SCHEMA_VERSION


def test_every_step_the_product_registers_leads_without_a_gap_to_the_current_version() -> None:
    for version in UPCASTERS:
        assert version < SCHEMA_VERSION
        assert all(later in UPCASTERS for later in range(version, SCHEMA_VERSION))


def test_given_a_newer_version_from_a_peer_then_the_consumer_rejects_it_counted_by_its_reason(
    consumer_settings: Settings,
) -> None:
    # GIVEN a peer region already publishing a schema version this consumer does not know
    document = json.loads(make_snapshot(SOURCE, 3).to_json()) | {"schema_version": SCHEMA_VERSION + 1}
    outcomes = FakeOutcomes()
    consumer = fake_consumer(consumer_settings, outcomes=outcomes)

    # WHEN the record is accepted THEN it is rejected (to the DLQ after its retries), counted by reason
    with pytest.raises(InvalidRecordError):
        consumer.accept(sns_body(json.dumps(document), topic_arn(SOURCE)), "m-1")

    assert outcomes.reasons == {(Outcome.REJECTED, NEWER_SCHEMA_VERSION): 1}


@pytest.fixture
def consumer_settings() -> Settings:
    return Settings.from_env(
        {
            "SGMESH_CLUSTER": CLUSTER,
            "SGMESH_TABLE_NAME": "sgmesh-prod",
            "AWS_REGION": "us-east-1",
            "SGMESH_SECURITY_GROUP_IDS": "sg-0aaaaaaaaaaaaaaa1",
            "SGMESH_PORTS": "tcp:7000",
            "SGMESH_PEER_TOPIC_ARNS": topic_arn(SOURCE),
        }
    )
