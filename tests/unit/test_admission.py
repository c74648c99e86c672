"""The admission barrier's bookkeeping and decisions (schemas.admission), in any order of arrival."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.admission import (
    AckRecord,
    Admission,
    AdmissionStatus,
    Verdict,
    converged,
    missing_regions,
    newest_acknowledgements,
    verdict,
)

SOURCE = "111111111111/us-east-1/cassandra"
REGIONS = ("111111111111/us-east-1", "111111111111/us-west-2", "111111111111/eu-west-1")
EAST, WEST, EU = REGIONS
AT = datetime(2026, 1, 1, tzinfo=UTC)


def ack(region: str, version: int, seconds: int = 0) -> AckRecord:
    return AckRecord(SOURCE, region, version, AT, AT + timedelta(seconds=seconds))


def waiting(version: int) -> Admission:
    return Admission("cassandra", "i-0123456789abcdef0", "hook", "t" * 36, version, AT + timedelta(minutes=2))


acks = st.builds(ack, st.sampled_from(REGIONS), st.integers(1, 6), st.integers(0, 60))


@given(st.lists(acks, max_size=12), st.randoms())
def test_any_order_and_duplication_of_acknowledgements_keeps_the_newest_of_each_region(
    records: list[AckRecord], random: object
) -> None:
    # GIVEN acknowledgements delivered in any order, some twice (SNS and SQS are at-least-once, unordered)
    shuffled = [*records, *records[: len(records) // 2]]
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    # WHEN they are folded newest-wins
    newest = newest_acknowledgements(shuffled)
    # THEN each region keeps its highest version, whatever came after it (an older version acknowledged
    # after a newer one changes nothing), and the same as folding them in delivery order
    for region in REGIONS:
        versions = [record.version for record in records if record.region == region]
        assert (newest[region].version if region in newest else None) == (max(versions) if versions else None)
    assert {r: n.version for r, n in newest.items()} == {
        r: n.version for r, n in newest_acknowledgements(records).items()
    }


@given(st.lists(acks, max_size=12), st.integers(1, 6))
def test_a_launch_is_admitted_exactly_when_every_awaited_region_enforces_its_version_or_newer(
    records: list[AckRecord], version: int
) -> None:
    newest = newest_acknowledgements(records)
    decided = verdict(waiting(version), newest, REGIONS, deadline_passed=False)
    everywhere = all(region in newest and newest[region].version >= version for region in REGIONS)
    assert (decided is Verdict.ADMIT) == everywhere
    assert decided in (Verdict.ADMIT, Verdict.WAIT)  # never timed out before its deadline
    floor = converged(newest, REGIONS)
    assert (floor is not None and floor.version >= version) == everywhere


def test_at_its_deadline_a_launch_times_out_naming_the_regions_that_did_not_acknowledge() -> None:
    newest = newest_acknowledgements([ack(EAST, 5), ack(WEST, 4), ack(EU, 9)])
    assert verdict(waiting(5), newest, REGIONS, deadline_passed=True) is Verdict.TIME_OUT
    assert missing_regions(waiting(5), newest, REGIONS) == [WEST]
    # a region that acknowledged nothing at all is missing as well
    assert missing_regions(waiting(5), newest_acknowledgements([ack(EAST, 5)]), REGIONS) == [EU, WEST]
    # but a launch every region admits is admitted, even when its deadline's check comes first
    assert verdict(waiting(4), newest, REGIONS, deadline_passed=True) is Verdict.ADMIT


def test_a_region_removed_from_the_peers_is_no_longer_waited_for() -> None:
    newest = newest_acknowledgements([ack(EAST, 5), ack(WEST, 5)])
    assert verdict(waiting(5), newest, REGIONS, deadline_passed=False) is Verdict.WAIT
    assert verdict(waiting(5), newest, (EAST, WEST), deadline_passed=False) is Verdict.ADMIT


def test_a_settled_admission_is_never_decided_again() -> None:
    newest = newest_acknowledgements([ack(region, 9) for region in REGIONS])
    for status in (AdmissionStatus.ADMITTED, AdmissionStatus.TIMED_OUT):
        settled = waiting(5).settled(status)
        assert verdict(settled, newest, REGIONS, deadline_passed=True) is Verdict.WAIT


def test_the_converged_version_is_the_lowest_newest_and_its_last_acknowledgement() -> None:
    newest = newest_acknowledgements([ack(EAST, 7, 1), ack(WEST, 5, 9), ack(EU, 5, 30)])
    floor = converged(newest, REGIONS)
    assert floor is not None
    assert (floor.version, floor.region) == (5, EU)
    assert converged(newest_acknowledgements([ack(EAST, 7)]), REGIONS) is None
