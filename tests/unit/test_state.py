"""The newest-version-wins fold: order and duplication of snapshots never change the result."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumers.state import newest_per_source, supersedes
from schemas.events import MembershipSnapshot, Source
from tests.fakes import make_member, make_snapshot

SOURCES = (
    Source(account="111111111111", region="eu-west-1", group="cassandra"),
    Source(account="111111111111", region="us-east-1", group="cassandra"),
    Source(account="222222222222", region="eu-west-1", group="cassandra"),
)


@st.composite
def snapshots_with_distinct_versions(draw: st.DrawFn) -> list[MembershipSnapshot]:
    snapshots = []
    for index, source in enumerate(SOURCES[: draw(st.integers(1, len(SOURCES)))]):
        for version in draw(st.sets(st.integers(1, 50), min_size=1, max_size=6)):
            # The member list encodes the version, so a wrong pick is visible in the content too.
            members = [make_member(f"i-{index:08x}{version:08x}", f"54.{index}.{version}.1/32")]
            snapshots.append(make_snapshot(source, version, members))
    return snapshots


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[MembershipSnapshot], list[MembershipSnapshot]]:
    """Snapshots, and any permutation of them with any of them delivered again."""
    snapshots = draw(snapshots_with_distinct_versions())
    again = draw(st.lists(st.sampled_from(snapshots), max_size=10))
    return snapshots, draw(st.permutations(snapshots + again))


@given(deliveries())
def test_any_order_and_duplication_keeps_the_highest_version_per_source(
    case: tuple[list[MembershipSnapshot], list[MembershipSnapshot]],
) -> None:
    snapshots, delivered = case
    expected = {
        key: max((s for s in snapshots if s.source.key == key), key=lambda s: s.version)
        for key in {s.source.key for s in snapshots}
    }

    assert newest_per_source(delivered) == expected


def test_given_no_snapshots_then_no_state() -> None:
    assert newest_per_source([]) == {}


def test_given_same_version_again_then_it_does_not_supersede() -> None:
    stored = make_snapshot(SOURCES[0], 3)

    assert not supersedes(make_snapshot(SOURCES[0], 3), stored)
    assert not supersedes(make_snapshot(SOURCES[0], 2), stored)
    assert supersedes(make_snapshot(SOURCES[0], 4), stored)
    assert supersedes(stored, None)
