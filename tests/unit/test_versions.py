"""Versions survive a lost table: a hybrid clock (the larger of the version read + 1 and the time in
milliseconds) keeps every producer's published versions strictly increasing, through racing claims,
recreated tables and clocks that step either way."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from functools import partial

from aws_lambda_powertools.logging import Logger
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.service import SnapshotService
from schemas.inventory import GroupInstance, InstanceAddresses
from schemas.ledger import LedgerEntry, epoch_milliseconds
from schemas.lifecycle import TrueupRequest
from tests.fakes import (
    CLUSTER,
    PRODUCED_AT,
    FakeAddressDirectory,
    FakeGroupDirectory,
    FakeLifecycleHooks,
    FakeProducerOutcomes,
    FakeSnapshotTopic,
    FakeVersionLedger,
)
from tests.unit.test_snapshot_service import A1, V1, Producer, producer_settings

# Hosts keep their clocks within this of true time (Lambda's are NTP-synchronised far closer).
CLOCK_ERROR = timedelta(seconds=1)
ERROR_MS = CLOCK_ERROR // timedelta(milliseconds=1)
# Deleting a table and creating it again (CloudFormation, or by hand) takes longer than this.
TABLE_RECREATION = timedelta(minutes=1)


def test_the_next_version_is_one_past_the_one_read_or_the_time_in_milliseconds_if_that_is_later() -> None:
    assert LedgerEntry(claimed=0).next_version(PRODUCED_AT) == V1
    assert LedgerEntry(claimed=41).next_version(PRODUCED_AT) == V1
    assert LedgerEntry(claimed=V1).next_version(PRODUCED_AT) == V1 + 1
    # A clock that stepped back never moves a version back
    assert LedgerEntry(claimed=V1 + 5000).next_version(PRODUCED_AT - timedelta(hours=1)) == V1 + 5001


def test_milliseconds_are_whole_and_exact() -> None:
    assert epoch_milliseconds(PRODUCED_AT + timedelta(microseconds=999)) == V1
    assert epoch_milliseconds(PRODUCED_AT + timedelta(milliseconds=1)) == V1 + 1


def test_given_a_table_recreated_after_many_publishes_then_the_next_version_is_above_all_of_them() -> None:
    # GIVEN a producer that published 50 times within one millisecond (its versions ran ahead of the
    # clock), then lost its table
    producer = Producer()
    for _ in range(50):
        producer.service.trueup(TrueupRequest(("asg-a",)))
    before = max(snapshot.version for snapshot in producer.topic.published)
    producer.ledger.lose_table()
    producer.now += TABLE_RECREATION

    # WHEN it publishes again on the new, empty table
    producer.service.trueup(TrueupRequest(("asg-a",)))

    # THEN its version is above every one it published before: consumers apply it, none is stale
    assert producer.topic.published[-1].version > before
    assert producer.ledger.versions[(CLUSTER, "asg-a")] == producer.topic.published[-1].version


class World:
    """Two producers of one region (say a lifecycle invocation and a true-up) sharing a table, each
    with its own clock, off true time by at most CLOCK_ERROR; true time moves a millisecond per clock
    read at least (a claim takes a describe and a round trip)."""

    def __init__(self) -> None:
        self.true_time = PRODUCED_AT
        self.offsets = [timedelta(0), timedelta(0)]
        self.ledger = FakeVersionLedger()
        self.topic = FakeSnapshotTopic()
        self.groups = [FakeGroupDirectory({"asg-a": [GroupInstance(A1, "InService")]}) for _ in range(2)]
        addresses = FakeAddressDirectory([InstanceAddresses(A1, public_ipv4="54.1.0.1")])
        self.producers = [
            SnapshotService(
                settings=producer_settings(),
                groups=groups,
                addresses=addresses,
                ledger=self.ledger,
                topic=self.topic,
                hooks=FakeLifecycleHooks(),
                outcomes=FakeProducerOutcomes(),
                logger=Logger(service="test"),
                clock=partial(self.clock, index),
            )
            for index, groups in enumerate(self.groups)
        ]

    def clock(self, index: int) -> datetime:
        self.true_time += timedelta(milliseconds=1)
        return self.true_time + self.offsets[index]

    def trueup(self, index: int) -> None:
        self.producers[index].trueup(TrueupRequest(("asg-a",)))


STEPS = st.one_of(
    st.tuples(st.just("trueup"), st.integers(0, 1)),
    st.tuples(st.just("race"), st.integers(0, 1)),
    st.tuples(st.just("clock"), st.integers(0, 1), st.integers(-ERROR_MS, ERROR_MS)),
    st.tuples(st.just("wait"), st.integers(0, 10_000)),
    st.tuples(st.just("lose table"), st.integers(0, 10 * 60_000)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(STEPS, min_size=1, max_size=40))
def test_any_interleaving_of_claims_table_losses_and_clock_steps_publishes_strictly_increasing_versions(
    steps: list[tuple[object, ...]],
) -> None:
    world = World()
    for step in steps:
        match step:
            case ("trueup", int(index)):
                world.trueup(index)
            case ("race", int(index)):
                # The other producer claims between this one's ledger read and its claim
                world.groups[index].during_describe.append(partial(world.trueup, 1 - index))
                world.trueup(index)
            case ("clock", int(index), int(offset_ms)):
                world.offsets[index] = timedelta(milliseconds=offset_ms)
            case ("wait", int(ms)):
                world.true_time += timedelta(milliseconds=ms)
            case ("lose table", int(ms)):
                world.ledger.lose_table()
                world.true_time += TABLE_RECREATION + timedelta(milliseconds=ms)
    versions = [snapshot.version for snapshot in world.topic.published]
    assert all(earlier < later for earlier, later in itertools.pairwise(versions)), versions


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(10**10), 10**10), min_size=1, max_size=30))
def test_without_a_table_loss_any_clock_however_wrong_publishes_strictly_increasing_versions(
    offsets_ms: list[int],
) -> None:
    world = World()
    for offset in offsets_ms:
        world.offsets[0] = timedelta(milliseconds=offset)
        world.trueup(0)
    versions = [snapshot.version for snapshot in world.topic.published]
    assert all(earlier < later for earlier, later in itertools.pairwise(versions)), versions
