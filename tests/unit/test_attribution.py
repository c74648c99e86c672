"""A consumer revokes only what it knows to be gone: each managed rule (and prefix-list entry) names its
source, and the rules of a source it has not heard from stay until that source speaks, leaves the
peers, or has been silent for the maximum event age."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.attribution import (
    UNATTRIBUTED,
    SourceLabel,
    attribute,
    describe_member,
    hold,
    spelled,
)
from schemas.events import Source
from schemas.prefix_lists import PrefixListInfo
from schemas.quota import Family
from schemas.settings import Settings, TargetMode
from tests.fakes import (
    CLUSTER,
    RECEIVED_AT,
    FakePrefixLists,
    FakeSecurityGroups,
    FakeSourceStates,
    fake_consumer,
    make_member,
    make_snapshot,
    topic_arn,
)

EAST = Source(account="111111111111", region="us-east-1", group="cassandra")
WEST = Source(account="111111111111", region="us-west-2", group="cassandra")
# Another account's group of the same name in the same region (a cross-account cluster).
WEST_OTHER_ACCOUNT = Source(account="222222222222", region="us-west-2", group="cassandra")
GROUP_IDS = ("sg-0aaaaaaaaaaaaaaa1", "sg-0bbbbbbbbbbbbbbb2")
LISTS = (PrefixListInfo("pl-0aaaaaaaaaaaaaaa1", Family.IPV4, 1, 20),)
MAX_AGE = timedelta(seconds=21600)
TCP = ("tcp", 7000, 7001)


def settings(*peers: Source, target: TargetMode = TargetMode.SECURITY_GROUP) -> Settings:
    return Settings.from_env(
        {
            "SGMESH_CLUSTER": CLUSTER,
            "SGMESH_TABLE_NAME": "sgmesh-prod",
            "AWS_REGION": "us-east-1",
            "SGMESH_SECURITY_GROUP_IDS": ",".join(GROUP_IDS),
            "SGMESH_PORTS": "tcp:7000-7001",
            "SGMESH_PEER_TOPIC_ARNS": ",".join(topic_arn(peer) for peer in peers),
            "SGMESH_TARGET": target.value,
            "SGMESH_PREFIX_LIST_IDS": LISTS[0].prefix_list_id if target is TargetMode.PREFIX_LIST else "",
        }
    )


def address(n: int) -> str:
    return f"54.9.0.{n}/32"


def members_of(source: Source, *numbers: int) -> list[Any]:
    region = 1 if source.region == "us-east-1" else 2
    return [make_member(f"i-{region:08x}{n:09x}", address(region * 10 + n)) for n in numbers]


class Region:
    """One consumer over fakes, its clock movable: us-east-1, with the target the settings choose."""

    def __init__(self, configured: Settings, states: FakeSourceStates | None = None) -> None:
        self.settings = configured
        self.now = RECEIVED_AT
        self.states = states or FakeSourceStates()
        self.groups = FakeSecurityGroups(*GROUP_IDS)
        self.lists = FakePrefixLists(*LISTS)
        self.rebuild()

    def rebuild(self, configured: Settings | None = None) -> None:
        """The consumer after a deploy (new settings) or a cold start; same table and groups."""
        self.settings = configured or self.settings
        self.consumer = fake_consumer(
            self.settings, states=self.states, groups=self.groups, lists=self.lists, clock=lambda: self.now
        )

    def admitted(self) -> set[str]:
        """The addresses every managed group admits (per-address rules, or through the list)."""
        listed = set(self.lists.entries(LISTS[0].prefix_list_id))
        per_group = []
        for group_id in GROUP_IDS:
            rules = self.groups.rules(group_id)
            cidrs = {r.permission.cidr for r in rules if r.permission and r.description.startswith("sgmesh:")}
            if any(rule.reference for rule in rules):
                cidrs |= listed
            per_group.append(cidrs)
        if self.settings.target is TargetMode.SHARDED:
            return set().union(*per_group)
        return set.intersection(*per_group)


EVERY_TARGET = pytest.mark.parametrize("target", list(TargetMode))


# --- descriptions -------------------------------------------------------------------------------------

SOURCES = st.builds(
    Source,
    account=st.from_regex(r"[0-9]{12}", fullmatch=True),
    region=st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1"]),
    group=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=120),
)


@given(SOURCES, st.from_regex(r"i-[0-9a-f]{17}", fullmatch=True))
def test_any_description_sgmesh_writes_names_its_source_and_no_other(source: Source, instance: str) -> None:
    description = describe_member(CLUSTER, source, instance)

    label = attribute(CLUSTER, description)

    other_account = "000000000000" if source.account != "000000000000" else "999999999999"
    assert label == SourceLabel(source.region, spelled(source.group), source.account)
    assert label.among([(source.region, source.account)])
    assert not label.among([(source.region, other_account), ("sa-east-1", source.account)])


def test_a_description_written_before_the_account_was_added_names_the_group_in_any_account() -> None:
    label = attribute(CLUSTER, f"sgmesh:{CLUSTER} us-west-2/cass/andra/i-00000000000000001")

    assert label == SourceLabel("us-west-2", "cass/andra")
    assert label.among([("us-west-2", "333333333333")])
    # ... and a snapshot of that group in any account says what became of its rules
    other = Source(account="222222222222", region="us-west-2", group="cass/andra")
    decided = hold(
        CLUSTER,
        {"sgr-old": f"sgmesh:{CLUSTER} us-west-2/cass/andra/i-00000000000000001"},
        counted=[other],
        peers=[("us-west-2", other.account)],
        holds={},
        now=RECEIVED_AT,
        max_silence=MAX_AGE,
    )
    assert decided.keep == frozenset()


@pytest.mark.parametrize(
    "description",
    [
        f"sgmesh:{CLUSTER}",
        f"sgmesh:{CLUSTER} bastion",
        f"sgmesh:{CLUSTER} us-west-2/cassandra",
        f"sgmesh:{CLUSTER} us-west-2/cassandra/i-0000",  # cut at 255 characters
        f"sgmesh:{CLUSTER} prefix-list ipv4",
    ],
)
def test_a_marked_description_that_names_no_source_is_unattributed(description: str) -> None:
    assert attribute(CLUSTER, description) is None


def test_another_clusters_description_is_not_this_clusters() -> None:
    assert attribute(CLUSTER, "sgmesh:other 111111111111/us-west-2/cassandra/i-00000000000000001") is None


# --- the decision, pure -------------------------------------------------------------------------------


def decide(unwanted: dict[str, str], *, counted: list[Source], holds: dict[str, Any], age: timedelta) -> Any:
    return hold(
        CLUSTER,
        unwanted,
        counted=counted,
        peers=[("us-east-1", EAST.account), ("us-west-2", WEST.account)],
        holds=holds,
        now=RECEIVED_AT + age,
        max_silence=MAX_AGE,
    )


def test_rules_of_a_source_not_heard_from_stay_and_start_a_hold_then_go_after_the_maximum_age() -> None:
    unwanted = {"sgr-1": describe_member(CLUSTER, WEST, "i-00000000000000001")}
    key = "111111111111/us-west-2/cassandra"

    first = decide(unwanted, counted=[], holds={}, age=timedelta())
    within = decide(unwanted, counted=[], holds={key: RECEIVED_AT}, age=MAX_AGE)
    after = decide(unwanted, counted=[], holds={key: RECEIVED_AT}, age=MAX_AGE + timedelta(seconds=1))

    assert (first.keep, first.start, first.clear) == ({"sgr-1"}, {key}, set())
    assert (within.keep, within.start) == ({"sgr-1"}, set())
    assert (after.keep, after.start, after.clear) == (set(), set(), set())


def test_rules_of_a_known_source_or_of_a_source_no_longer_a_peer_go_at_once_and_their_holds_clear() -> None:
    unwanted = {
        "sgr-known": describe_member(CLUSTER, WEST, "i-00000000000000001"),
        "sgr-gone": describe_member(
            CLUSTER, Source(account=EAST.account, region="eu-west-1", group="c"), "i-00000000000000001"
        ),
    }
    holds = {"111111111111/us-west-2/cassandra": RECEIVED_AT}

    decided = decide(unwanted, counted=[WEST], holds=holds, age=timedelta())

    assert (decided.keep, decided.start, decided.clear) == (set(), set(), set(holds))


def test_a_hand_written_marked_rule_is_held_under_its_own_key_like_an_unknown_source() -> None:
    decided = decide({"sgr-x": f"sgmesh:{CLUSTER} bastion"}, counted=[WEST], holds={}, age=timedelta())

    assert (decided.keep, decided.start) == ({"sgr-x"}, {UNATTRIBUTED})


def test_a_cross_account_source_is_told_apart_by_its_account() -> None:
    # The other account's group has the same name and region; only this account's is known.
    unwanted = {"sgr-other": describe_member(CLUSTER, WEST_OTHER_ACCOUNT, "i-00000000000000001")}

    decided = hold(
        CLUSTER,
        unwanted,
        counted=[WEST],
        peers=[("us-west-2", WEST.account), ("us-west-2", WEST_OTHER_ACCOUNT.account)],
        holds={},
        now=RECEIVED_AT,
        max_silence=MAX_AGE,
    )

    assert decided.keep == {"sgr-other"}


# --- the consumer, in every target mode --------------------------------------------------------------


@EVERY_TARGET
def test_given_a_recreated_table_when_one_source_speaks_then_the_others_rules_stay(
    target: TargetMode,
) -> None:
    # GIVEN a consumer that admits both regions' members, whose table is then recreated (empty)
    region = Region(settings(EAST, WEST, target=target))
    region.consumer.apply(
        [make_snapshot(EAST, 1, members_of(EAST, 1)), make_snapshot(WEST, 1, members_of(WEST, 1))]
    )
    before = region.admitted()
    region.states = FakeSourceStates()
    region.rebuild()

    # WHEN the first snapshot it gets is the east's, with a new member
    region.consumer.apply([make_snapshot(EAST, 2, members_of(EAST, 1, 2))])

    # THEN the west's member is still admitted (nothing says it left), and a hold is recorded
    assert region.admitted() == before | {address(12)}
    assert set(region.states.holds(CLUSTER)) == {"111111111111/us-west-2/cassandra"}


@EVERY_TARGET
def test_given_held_rules_when_their_source_speaks_then_they_follow_its_snapshot(
    target: TargetMode,
) -> None:
    region = Region(settings(EAST, WEST, target=target))
    region.consumer.apply(
        [make_snapshot(EAST, 1, members_of(EAST, 1)), make_snapshot(WEST, 1, members_of(WEST, 1, 2))]
    )
    region.states = FakeSourceStates()
    region.rebuild()
    region.consumer.apply([make_snapshot(EAST, 2, members_of(EAST, 1))])

    # WHEN the west speaks again: its second member has left meanwhile
    region.consumer.apply([make_snapshot(WEST, 2, members_of(WEST, 1))])

    # THEN only the leaver goes
    assert region.admitted() == {address(11), address(21)}


@EVERY_TARGET
def test_given_held_rules_when_their_source_stays_silent_past_the_maximum_age_then_they_go(
    target: TargetMode,
) -> None:
    region = Region(settings(EAST, WEST, target=target))
    region.consumer.apply(
        [make_snapshot(EAST, 1, members_of(EAST, 1)), make_snapshot(WEST, 1, members_of(WEST, 1))]
    )
    region.states = FakeSourceStates()
    region.rebuild()
    region.consumer.apply([make_snapshot(EAST, 2, members_of(EAST, 1))])

    # WHEN the consumer reconciles again (the east's true-ups) and the west stays silent, for the
    # maximum age and then a second more
    region.now += MAX_AGE
    region.consumer.reconcile()
    assert address(21) in region.admitted()
    region.now += timedelta(seconds=1)
    region.consumer.reconcile()

    # THEN the west's rules go
    assert region.admitted() == {address(11)}


@EVERY_TARGET
def test_given_a_region_removed_from_the_peers_when_the_next_reconcile_runs_then_its_rules_and_state_go(
    target: TargetMode,
) -> None:
    # GIVEN both regions admitted
    region = Region(settings(EAST, WEST, target=target))
    region.consumer.apply(
        [make_snapshot(EAST, 1, members_of(EAST, 1)), make_snapshot(WEST, 1, members_of(WEST, 1))]
    )

    # WHEN a deploy removes the west's topic from the peers, and any snapshot arrives
    region.rebuild(settings(EAST, target=target))
    region.consumer.apply([make_snapshot(EAST, 2, members_of(EAST, 1))])

    # THEN the west's members are no longer admitted, and its state is forgotten (a region re-added
    # later starts from its own next snapshot, never from this one)
    assert region.admitted() == {address(11)}
    assert set(region.states.versions(CLUSTER)) == {EAST.key}
