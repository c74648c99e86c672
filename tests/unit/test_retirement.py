"""Sources retire: a group the settings no longer name gets a final, empty snapshot (cause `retired`)
from every true-up of its region for RETIREMENT_PERIOD, then the ledger forgets it; named again, it
publishes above its retirement."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.events import CauseKind
from schemas.ledger import RETIREMENT_PERIOD
from schemas.lifecycle import TrueupRequest
from tests.fakes import CLUSTER, PRODUCED_AT
from tests.unit.test_snapshot_service import A1, B1, V1, Producer, action


def retired_b() -> Producer:
    """asg-a and asg-b published; then the stack is deployed with asg-a only."""
    producer = Producer()
    producer.service.trueup(TrueupRequest())
    producer.redeploy(SGMESH_ASG_NAMES="asg-a")
    producer.now += timedelta(minutes=15)
    return producer


def published_by_group(producer: Producer, since: int = 0) -> dict[str, list[tuple[CauseKind, int, int]]]:
    found: dict[str, list[tuple[CauseKind, int, int]]] = {}
    for snapshot in producer.topic.published[since:]:
        found.setdefault(snapshot.source.group, []).append(
            (snapshot.cause.kind, len(snapshot.members), snapshot.version)
        )
    return found


def test_a_group_dropped_from_the_settings_is_retired_by_the_next_true_up_with_an_empty_snapshot() -> None:
    # GIVEN asg-b (B1 still running) dropped from SGMESH_ASG_NAMES
    producer = retired_b()
    before = len(producer.topic.published)

    # WHEN the region's true-up runs
    producer.service.trueup(TrueupRequest())

    # THEN asg-a is published as ever, and asg-b once more: empty, cause retired, above its last version
    published = published_by_group(producer, since=before)
    assert [(kind, members) for kind, members, _v in published["asg-a"]] == [(CauseKind.TRUEUP, 2)]
    ((kind, members, version),) = published["asg-b"]
    assert (kind, members) == (CauseKind.RETIRED, 0)
    assert version > V1
    # ... without describing it: it is no source any more
    assert all("asg-b" not in names for names in producer.groups.describes[1:])
    # ... and the ledger notes when it retired
    assert producer.ledger.retired == {(CLUSTER, "asg-b"): producer.now}


def test_the_retirement_is_published_again_by_every_true_up_of_its_period_then_no_more() -> None:
    producer = retired_b()
    producer.service.trueup(TrueupRequest())
    retired_at = producer.now

    # WHEN true-ups run through the period, and one after it
    for moment in (timedelta(minutes=15), RETIREMENT_PERIOD - timedelta(seconds=1), RETIREMENT_PERIOD):
        producer.now = retired_at + moment
        producer.service.trueup(TrueupRequest())

    # THEN every true-up within the period published it again, each above the one before; none after
    retirements = [
        (s.produced_at - retired_at, s.version)
        for s in producer.topic.published
        if s.cause.kind is CauseKind.RETIRED
    ]
    assert [moment for moment, _v in retirements] == [
        timedelta(0),
        timedelta(minutes=15),
        RETIREMENT_PERIOD - timedelta(seconds=1),
    ]
    versions = [version for _moment, version in retirements]
    assert versions == sorted(set(versions))
    # ... and the first retirement's time is kept (it decides when the period ends)
    assert producer.ledger.retired == {(CLUSTER, "asg-b"): retired_at}


def test_a_lost_retirement_delivery_is_repaired_by_the_next_true_up() -> None:
    # GIVEN the first retirement failed to publish (the true-up fails, after asg-a published)
    producer = retired_b()
    producer.topic.refused.add("asg-b")
    before = len(producer.topic.published)
    with pytest.raises(ConnectionError, match="asg-b"):
        producer.service.trueup(TrueupRequest())
    assert list(published_by_group(producer, since=before)) == ["asg-a"]
    producer.topic.refused.clear()
    assert producer.ledger.retired == {}

    # WHEN the next true-up runs THEN it publishes the retirement
    producer.now += timedelta(minutes=15)
    producer.service.trueup(TrueupRequest())
    assert [s.cause.kind for s in producer.topic.published if s.source.group == "asg-b"][
        -1
    ] is CauseKind.RETIRED


def test_only_a_whole_region_true_up_retires_a_lifecycle_batch_or_a_named_true_up_does_not() -> None:
    producer = retired_b()
    before = len(producer.topic.published)

    producer.service.on_lifecycle_actions([action(A1, launching=True)])
    producer.service.trueup(TrueupRequest(("asg-a",)))
    producer.service.on_lifecycle_actions([action(B1, launching=False, group="asg-b")])

    assert "asg-b" not in published_by_group(producer, since=before)


def test_a_retired_group_named_again_publishes_above_its_retirement_and_is_no_longer_retired() -> None:
    producer = retired_b()
    producer.service.trueup(TrueupRequest())
    retirement = producer.topic.published[-1]
    assert retirement.cause.kind is CauseKind.RETIRED

    # WHEN the group is named again (a clock behind the retirement's does not matter) and trued up
    producer.redeploy()
    producer.now = PRODUCED_AT - timedelta(days=1)
    producer.service.trueup(TrueupRequest())
    producer.service.trueup(TrueupRequest())

    # THEN its snapshots carry its members, above the retirement, and nothing retires it again
    again = [s for s in producer.topic.published if s.source.group == "asg-b"][-2:]
    assert [(s.cause.kind, len(s.members)) for s in again] == [(CauseKind.TRUEUP, 1)] * 2
    assert retirement.version < again[0].version < again[1].version
    assert producer.ledger.retired == {}


def test_a_group_the_ledger_never_knew_is_not_retired() -> None:
    # GIVEN only asg-a ever published WHEN asg-b is dropped THEN there is nothing to retire
    producer = Producer()
    producer.service.trueup(TrueupRequest(("asg-a",)))
    producer.redeploy(SGMESH_ASG_NAMES="asg-a")

    producer.service.trueup(TrueupRequest())

    assert {s.source.group for s in producer.topic.published} == {"asg-a"}


def test_a_region_leaving_the_mesh_retires_every_group_named_or_only_known_to_its_ledger() -> None:
    # GIVEN asg-b dropped from the settings (its ledger still knows it) and asg-a still named
    producer = retired_b()
    before = len(producer.topic.published)

    # WHEN the region is retired (sgmesh teardown)
    published = producer.service.retire_region()

    # THEN both groups are published once: empty, cause retired, above their last versions
    assert published_by_group(producer, since=before).keys() == {"asg-a", "asg-b"}
    assert all(
        (kind, members) == (CauseKind.RETIRED, 0) and version > V1
        for ((kind, members, version),) in published_by_group(producer, since=before).values()
    )
    assert [p.version for p in published] == [s.version for s in producer.topic.published[before:]]
    # ... without describing any group
    assert len(producer.groups.describes) == 1
