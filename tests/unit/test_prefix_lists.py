"""The prefix-list planner: entry batches, MaxEntries growth and its rule weight, the referencing rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv4Network
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.logging import Logger
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from cloud.prefix_lists import PrefixLists
from consumers.errors import ListFullError, PrefixListConfigError
from consumers.group_targets import SecurityGroups
from consumers.prefix_list_target import PrefixListApi, PrefixListTarget
from consumers.prefix_lists import (
    CHANGES_PER_CALL,
    LIST_ENTRIES_LIMIT,
    TargetPlan,
    desired_entries,
    entry_batches,
    plan_target,
)
from consumers.service import ApplyService
from schemas.errors import PrefixListModifyFailedError, RuleConflictError
from schemas.events import MembershipSnapshot, Source
from schemas.prefix_lists import (
    EntryBatch,
    PrefixListEntry,
    PrefixListInfo,
    PrefixListState,
    weigh_references,
)
from schemas.quota import Family, Weight
from schemas.rules import DesiredRule, GroupReference, InboundRule, Permission, Reference
from schemas.settings import AddressMode, PortSpec, Settings, TargetMode
from tests.fakes import (
    FakeOutcomes,
    FakePrefixLists,
    FakeSecurityGroups,
    FakeSourceStates,
    fake_consumer,
    make_member,
    make_snapshot,
    topic_arn,
)

GROUP = "sg-0123456789abcdef0"
LIST = "pl-0123456789abcdef0"
FOREIGN = "pl-0fedcba9876543210"
PORTS = (PortSpec.parse("tcp:7000-7001"), PortSpec.parse("udp:7002"), PortSpec.parse("tcp:9042"))
EU = Source(account="111111111111", region="eu-west-1", group="cassandra")

ADDRESSES = st.integers(min_value=0, max_value=399).map(lambda n: f"54.0.{n // 200}.{n % 200 + 1}/32")
ADDRESS_SETS = st.frozensets(ADDRESSES, max_size=400)


def entries(cidrs: frozenset[str] | set[str]) -> dict[str, PrefixListEntry]:
    return {cidr: PrefixListEntry(cidr, f"sgmesh:prod {cidr}") for cidr in cidrs}


def state(cidrs: frozenset[str] | set[str], max_entries: int = 1000, version: int = 7) -> PrefixListState:
    info = PrefixListInfo(LIST, Family.IPV4, version, max_entries)
    return PrefixListState(info, tuple(sorted(entries(cidrs).values())))


def reference_rule(
    rule_id: str, spec: PortSpec, prefix_list_id: str = LIST, description: str = ""
) -> InboundRule:
    return InboundRule(
        rule_id,
        Reference(spec.protocol, spec.from_port, spec.to_port, prefix_list_id),
        description or "sgmesh:prod prefix-list ipv4",
    )


def operator_rules(count: int) -> list[InboundRule]:
    return [
        InboundRule(f"sgr-op-{n}", Permission("tcp", 22, 22, f"203.0.113.{n + 1}/32"), "bastion")
        for n in range(count)
    ]


def plan(
    desired: set[str] | frozenset[str],
    current: PrefixListState,
    rules: list[InboundRule] | None = None,
    quota: int = 1000,
    foreign: dict[str, PrefixListInfo] | None = None,
) -> TargetPlan:
    return plan_target(
        cluster="prod",
        ports=PORTS,
        quota=quota,
        desired={Family.IPV4: entries(desired)},
        lists=[current],
        groups={GROUP: rules or []},
        foreign=foreign or {},
    )


# --- entry batches ------------------------------------------------------------------------------------


@given(current=ADDRESS_SETS, desired=ADDRESS_SETS)
def test_any_current_entries_become_exactly_the_desired_ones_without_ever_dropping_a_desired_one(
    current: frozenset[str], desired: frozenset[str]
) -> None:
    # GIVEN any list and any desired membership WHEN the batches are applied one call at a time
    batches = entry_batches(current, entries(desired))

    present = set(current)
    peak = len(present)
    for batch in batches:
        # THEN each call is within ModifyManagedPrefixList's limits and names no entry twice
        assert len(batch.add) <= CHANGES_PER_CALL
        assert len(batch.remove) <= CHANGES_PER_CALL
        assert batch.add or batch.remove
        assert not {entry.cidr for entry in batch.add} & set(batch.remove)
        # ... removes only what is not desired, adds only what is missing
        assert not set(batch.remove) & desired
        assert not {entry.cidr for entry in batch.add} & present
        present = (present - set(batch.remove)) | {entry.cidr for entry in batch.add}
        # ... so a desired entry that was there stays there after every call
        assert desired & current <= present
        peak = max(peak, len(present))
    # ... the list ends exactly as desired, in the fewest calls, never holding more than needed
    assert present == desired
    assert len(batches) == -(-max(len(desired - current), len(current - desired)) // CHANGES_PER_CALL)
    assert peak <= max(len(current), len(desired))


def test_given_a_list_already_as_desired_when_batched_then_no_call() -> None:
    cidrs = {"54.0.0.1/32", "54.0.0.2/32"}
    assert entry_batches(cidrs, entries(cidrs)) == ()


# --- desired entries ----------------------------------------------------------------------------------


def test_given_members_when_desired_entries_then_one_entry_per_address_described_like_a_rule() -> None:
    snapshot = make_snapshot(
        EU, 3, [make_member("i-00000000000000001", "54.1.1.1/32"), make_member("i-00000000000000002", None)]
    )

    desired = desired_entries("prod", [snapshot], AddressMode.PUBLIC)

    assert desired == {
        Family.IPV4: {
            "54.1.1.1/32": PrefixListEntry(
                "54.1.1.1/32", "sgmesh:prod 111111111111/eu-west-1/cassandra/i-00000000000000001"
            )
        }
    }


# --- MaxEntries growth and rule weight ----------------------------------------------------------------


def test_given_more_members_than_max_entries_when_planned_then_grow_first_with_headroom() -> None:
    desired = {f"54.0.0.{n}/32" for n in range(1, 101)}

    result = plan(desired, state(set(), max_entries=50))

    (item,) = result.lists
    assert item.grow_to == 110  # 100 needed + 10% headroom
    assert len(item.added) == 100
    (group,) = result.groups
    # THEN the weight is reported: 3 references, each counted as the list's new MaxEntries
    assert group.rules_peak == {Family.IPV4: 3 * 110}


def test_given_enough_room_when_planned_then_no_growth_and_the_list_never_shrinks() -> None:
    result = plan({"54.0.0.1/32"}, state({"54.0.0.1/32", "54.0.0.2/32"}, max_entries=300))

    (item,) = result.lists
    assert item.grow_to is None
    assert item.max_entries_after == 300
    assert item.removed == ("54.0.0.2/32",)


def test_given_a_tight_quota_when_growing_then_headroom_is_capped_by_what_each_group_holds() -> None:
    # 3 references of the list, plus 10 operator rules: at quota 350, the list may weigh 113 at most
    desired = {f"54.0.0.{n}/32" for n in range(1, 106)}

    result = plan(desired, state(set(), max_entries=50), operator_rules(10), quota=350)

    (item,) = result.lists
    assert item.grow_to == 113
    assert result.quota_error() is None


def test_given_a_growth_no_group_can_hold_when_planned_then_it_grows_to_what_it_can_and_the_rest_wait() -> (
    None
):
    # 400 members on 3 ports weigh at least 1,200 rules: over the highest quota AWS grants (1,000)
    desired = {f"54.0.{n // 200}.{n % 200 + 1}/32" for n in range(400)}

    result = plan(desired, state(set(), max_entries=50), quota=1000)

    # THEN the list grows to the 333 entries 3 references can weigh, the lowest 333 addresses go in, the
    # rest wait, and the error names the list, the entries it needs and the most it can have
    (item,) = result.lists
    assert (item.grow_to, len(item.added), len(item.waiting)) == (333, 333, 67)
    assert max(IPv4Network(e.cidr) for e in item.added) < min(IPv4Network(e.cidr) for e in item.waiting)
    (group,) = result.groups
    assert group.rules_peak == {Family.IPV4: 3 * 333}
    error = result.quota_error()
    assert isinstance(error, ListFullError)
    assert (error.group_id, error.rules_needed, error.quota) == (LIST, 400, 333)


def test_an_operators_reference_to_another_list_weighs_its_max_entries() -> None:
    other = PrefixListInfo(FOREIGN, Family.IPV4, 1, 40)
    rules = [reference_rule("sgr-op", PortSpec.parse("tcp:22"), FOREIGN, "operator bastion list")]

    weights = Weight.total(weigh_references(rules, {FOREIGN: other}))

    assert weights == {Family.IPV4: 40}


def test_group_references_and_unknown_lists_count_once_against_both_families() -> None:
    group_ref = InboundRule("sgr-g", GroupReference("tcp", 22, 22, "sg-0fedcba9876543210"), "peer group")
    unknown = reference_rule("sgr-u", PortSpec.parse("tcp:22"), FOREIGN, "operator")

    assert Weight.total(weigh_references([group_ref, unknown], {})) == {Family.IPV4: 2, Family.IPV6: 2}


# --- the group's rules --------------------------------------------------------------------------------


def test_given_an_empty_group_when_planned_then_one_reference_per_port_spec_with_the_marker() -> None:
    result = plan({"54.0.0.1/32"}, state(set(), max_entries=20))

    (group,) = result.groups
    assert [desired.reference for desired in group.plan.authorize] == sorted(
        Reference(spec.protocol, spec.from_port, spec.to_port, LIST) for spec in PORTS
    )
    assert {desired.description for desired in group.plan.authorize} == {"sgmesh:prod prefix-list ipv4"}
    assert group.plan.revoke == ()


def test_given_references_in_place_when_planned_then_nothing_to_do() -> None:
    rules = [reference_rule(f"sgr-{n}", spec) for n, spec in enumerate(PORTS)]

    result = plan({"54.0.0.1/32"}, state({"54.0.0.1/32"}, max_entries=20), rules)

    assert result.is_empty


def test_given_a_switch_from_per_address_rules_when_planned_then_managed_cidr_rules_go_after_references() -> (
    None
):
    # GIVEN the security-group target's per-address rules, an operator's rule, an operator's reference
    legacy = InboundRule(
        "sgr-old", Permission("tcp", 7000, 7001, "54.0.0.1/32"), "sgmesh:prod eu-west-1/cassandra/i-1"
    )
    stale_port = reference_rule("sgr-stale", PortSpec.parse("tcp:8000"))
    operator = operator_rules(1)
    operators_reference = reference_rule(
        "sgr-op-ref", PortSpec.parse("tcp:7000-7001"), description="operator"
    )

    result = plan({"54.0.0.1/32"}, state(set(), 20), [legacy, stale_port, *operator, operators_reference])

    (group,) = result.groups
    # THEN the operator's identical reference counts as present; only marked rules are revoked
    assert {desired.allows.protocol + str(desired.allows.from_port) for desired in group.plan.authorize} == {
        "udp7002",
        "tcp9042",
    }
    assert {rule.rule_id for rule in group.plan.revoke} == {"sgr-old", "sgr-stale"}
    # ... the stale reference goes first (it admits nobody wanted), the references next, and the
    # per-address rule they replace last: at its peak the group holds both, and no more
    assert [(step.authorize != (), [r.rule_id for r in step.revoke]) for step in result.steps] == [
        (False, ["sgr-stale"]),
        (True, []),
        (False, ["sgr-old"]),
    ]
    assert group.rules_peak == {Family.IPV4: 1 + 1 + 20 + 2 * 20}
    assert group.rules_after == {Family.IPV4: 1 + 20 + 2 * 20}


# --- configuration errors -----------------------------------------------------------------------------


def test_given_addresses_of_a_family_without_a_list_when_planned_then_refused_naming_the_setting() -> None:
    with pytest.raises(
        PrefixListConfigError, match=r"1 ipv6 member addresses.*SGMESH_PREFIX_LIST_IDS has no ipv6"
    ):
        plan_target(
            cluster="prod",
            ports=PORTS,
            quota=1000,
            desired={Family.IPV6: {"2600:1f18::1/128": PrefixListEntry("2600:1f18::1/128")}},
            lists=[state(set())],
            groups={GROUP: []},
            foreign={},
        )


def test_given_two_lists_of_one_family_when_planned_then_refused_naming_both() -> None:
    second = PrefixListState(PrefixListInfo(FOREIGN, Family.IPV4, 1, 10), ())
    with pytest.raises(PrefixListConfigError, match=f"two ipv4 lists \\({LIST}, {FOREIGN}\\)"):
        plan_target(
            cluster="prod",
            ports=PORTS,
            quota=1000,
            desired={},
            lists=[state(set()), second],
            groups={},
            foreign={},
        )


def test_given_more_addresses_than_any_list_holds_when_planned_then_refused() -> None:
    desired = {f"54.{n // 250}.{n % 250}.1/32" for n in range(LIST_ENTRIES_LIMIT + 1)}
    with pytest.raises(PrefixListConfigError, match="1001 ipv4 member addresses do not fit one prefix list"):
        plan(desired, state(set()))


# --- the target (service layer) against an in-memory EC2 with AWS's version semantics ------------------


class FakePrefixListApi(PrefixListApi, SecurityGroups):
    """One list and one group, with CurrentVersion checked as AWS does; `race` runs before a write."""

    def __init__(self, max_entries: int, rules: list[InboundRule] | None = None) -> None:
        self.version = 1
        self.max_entries = max_entries
        self.entries: dict[str, PrefixListEntry] = {}
        self.rules = list(rules or [])
        self.writes: list[str] = []
        self.race: list[Callable[[], None]] = []

    @property
    def info(self) -> PrefixListInfo:
        return PrefixListInfo(LIST, Family.IPV4, self.version, self.max_entries)

    def describe(self, prefix_list_ids: Iterable[str]) -> dict[str, PrefixListInfo]:
        return {LIST: self.info} if LIST in prefix_list_ids else {}

    def read(self, info: PrefixListInfo) -> PrefixListState:
        assert info.version == self.version
        return PrefixListState(info, tuple(sorted(self.entries.values())))

    def _write(self, info: PrefixListInfo, what: str) -> None:
        while self.race:
            self.race.pop(0)()
        if info.version != self.version:
            raise RuleConflictError("PrefixListVersionMismatch")
        self.writes.append(what)

    def resize(self, info: PrefixListInfo, max_entries: int) -> PrefixListInfo:
        self._write(info, f"resize {max_entries}")
        self.max_entries = max_entries
        return self.info

    def modify(self, info: PrefixListInfo, batch: EntryBatch) -> PrefixListInfo:
        self._write(info, f"modify +{len(batch.add)} -{len(batch.remove)}")
        for cidr in batch.remove:
            del self.entries[cidr]
        self.entries.update({entry.cidr: entry for entry in batch.add})
        assert len(self.entries) <= self.max_entries
        self.version += 1
        return self.info

    def ingress_rules(self, group_id: str) -> list[InboundRule]:
        return list(self.rules)

    def authorize(self, group_id: str, rules: Sequence[DesiredRule]) -> None:
        self.writes.append(f"authorize {len(rules)}")
        self.rules += [InboundRule(f"sgr-{len(self.rules)}", rule.allows, rule.description) for rule in rules]

    def revoke(self, group_id: str, rules: Sequence[InboundRule]) -> None:
        self.writes.append(f"revoke {len(rules)}")
        gone = {rule.rule_id for rule in rules}
        self.rules = [rule for rule in self.rules if rule.rule_id not in gone]


def list_settings(quota: int) -> Settings:
    return Settings(
        cluster="prod",
        region="eu-west-1",
        table_name="sgmesh-prod",
        security_group_ids=(GROUP,),
        ports=PORTS,
        peer_topic_arns=(topic_arn(EU),),
        target=TargetMode.PREFIX_LIST,
        prefix_list_ids=(LIST,),
        rule_quota=quota,
    )


def target_for(api: FakePrefixListApi, states: FakeSourceStates, quota: int = 1000) -> PrefixListTarget:
    return PrefixListTarget(
        settings=list_settings(quota),
        states=states,
        groups=api,
        lists=api,
        outcomes=FakeOutcomes(),
        logger=Logger(service="test"),
        rule_quota=lambda: quota,
    )


def consumer_for(api: FakePrefixListApi, states: FakeSourceStates, quota: int = 1000) -> ApplyService[Any]:
    """The consumer the settings make of the prefix-list target, over the one list and group."""
    return fake_consumer(list_settings(quota), states=states, groups=api, lists=api)


def snapshot_of(version: int, count: int) -> MembershipSnapshot:
    return make_snapshot(
        EU, version, [make_member(f"i-{n:017x}", f"54.0.0.{n}/32") for n in range(1, count + 1)]
    )


def test_the_consumer_set_to_prefix_lists_grows_the_list_fills_it_and_references_it() -> None:
    # GIVEN a consumer whose settings choose the prefix-list target, a list of 2 entries, an empty group
    states = FakeSourceStates()
    groups = FakeSecurityGroups(GROUP, quota=1000)
    lists = FakePrefixLists(PrefixListInfo(LIST, Family.IPV4, 1, 2))
    consumer = fake_consumer(list_settings(1000), states=states, groups=groups, lists=lists)

    # WHEN a snapshot of 3 members arrives
    consumer.apply([snapshot_of(1, 3)])

    # THEN the list grew (3 + 10 headroom) before it took the members, and the group references it
    assert lists.writes == ["resize 13", "modify +3 -0"]
    assert set(lists.entries(LIST)) == {f"54.0.0.{n}/32" for n in range(1, 4)}
    assert {rule.allows for rule in groups.rules(GROUP)} == {
        Reference(spec.protocol, spec.from_port, spec.to_port, LIST) for spec in PORTS
    }


def test_given_a_racing_writer_when_reconciled_then_the_stale_write_is_replanned_and_no_member_is_lost() -> (
    None
):
    states = FakeSourceStates()
    states.store_if_newer(snapshot_of(1, 3))
    api = FakePrefixListApi(max_entries=20)

    def other_consumer() -> None:
        # another consumer stores a 4th member and writes it first
        states.store_if_newer(snapshot_of(2, 4))
        api.entries["54.0.0.4/32"] = PrefixListEntry("54.0.0.4/32", "other")
        api.version += 1

    api.race.append(other_consumer)

    review = consumer_for(api, states).reconcile()

    assert set(api.entries) == {f"54.0.0.{n}/32" for n in range(1, 5)}
    assert api.writes == ["modify +3 -0", "authorize 3"]
    assert {item.prefix_list_id for item in review.lists} | {group.group_id for group in review.groups} == {
        LIST,
        GROUP,
    }


def test_given_a_growth_over_the_quota_when_reconciled_then_what_fits_goes_in_and_the_rest_wait() -> None:
    # GIVEN 30 members on 3 ports, a quota of 60 and a list of 10 entries
    states = FakeSourceStates()
    states.store_if_newer(snapshot_of(1, 30))
    api = FakePrefixListApi(max_entries=10)

    # WHEN reconciled
    with pytest.raises(ListFullError, match=r"would need 30 ipv4 entries.*can hold it at 20"):
        consumer_for(api, states, quota=60).reconcile()

    # THEN the list grows to the 20 entries 3 references can weigh in 60 rules, the lowest 20 addresses
    # go in, the references follow, and the other 10 wait (the record is retried)
    assert api.writes == ["resize 20", "modify +20 -0", "authorize 3"]
    assert set(api.entries) == {f"54.0.0.{n}/32" for n in range(1, 21)}


def test_plan_reports_the_list_changes_as_rules_and_each_groups_weight_against_the_quota() -> None:
    states = FakeSourceStates()
    states.store_if_newer(snapshot_of(1, 2))
    api = FakePrefixListApi(max_entries=5)

    review = target_for(api, states, quota=60).observe().review()
    (list_review,) = review.lists
    (group_review,) = review.groups

    # the list: 2 entries, each what 3 port-spec rules would allow; entries after / MaxEntries after
    assert list_review.prefix_list_id == LIST
    assert len(list_review.added) == 2
    assert len(list_review.as_rules(list_review.added)) == 2 * 3
    assert (list_review.family, list_review.entries_after, list_review.max_entries_after) == (
        Family.IPV4,
        2,
        5,
    )
    # the group: 3 references, weighing 3 x 5
    assert [str(rule.allows) for rule in group_review.plan.authorize] == [
        f"tcp:7000-7001 from {LIST}",
        f"tcp:9042-9042 from {LIST}",
        f"udp:7002-7002 from {LIST}",
    ]
    assert (dict(group_review.rules_after), group_review.over_quota) == ({Family.IPV4: 15}, False)
    assert api.writes == []


# --- the adapter: AWS applies a modify asynchronously ----------------------------------------------------


def described(state: str, version: int, **extra: Any) -> dict[str, Any]:
    return {
        "PrefixListId": LIST,
        "AddressFamily": "IPv4",
        "State": state,
        "Version": version,
        "MaxEntries": 20,
        **extra,
    }


def stubbed_lists() -> tuple[PrefixLists, Stubber, list[float]]:
    client = boto3.client(
        "ec2", region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    slept: list[float] = []
    return PrefixLists(client, sleep=slept.append, settle_delay_seconds=0.5), Stubber(client), slept


def test_given_a_modify_in_progress_when_written_then_it_waits_for_the_new_version_before_returning() -> None:
    lists, stubber, slept = stubbed_lists()
    batch = EntryBatch(add=(PrefixListEntry("54.0.0.1/32", "sgmesh:prod x"),))
    stubber.add_response(
        "modify_managed_prefix_list",
        {"PrefixList": described("modify-in-progress", 7)},
        {
            "PrefixListId": LIST,
            "CurrentVersion": 7,
            "AddEntries": [{"Cidr": "54.0.0.1/32", "Description": "sgmesh:prod x"}],
        },
    )
    stubber.add_response(
        "describe_managed_prefix_lists", {"PrefixLists": [described("modify-in-progress", 7)]}
    )
    stubber.add_response("describe_managed_prefix_lists", {"PrefixLists": [described("modify-complete", 8)]})

    with stubber:
        after = lists.modify(PrefixListInfo(LIST, Family.IPV4, 7, 20), batch)

    assert (after.version, after.state) == (8, "modify-complete")
    assert slept == [0.5, 0.5]
    stubber.assert_no_pending_responses()


def test_given_a_failed_resize_when_written_then_a_permanent_error_with_aws_reason() -> None:
    lists, stubber, _slept = stubbed_lists()
    failed = described("modify-failed", 3, StateMessage="sg-0123456789abcdef0 cannot support the new size")
    stubber.add_response("modify_managed_prefix_list", {"PrefixList": failed})

    with stubber, pytest.raises(PrefixListModifyFailedError, match="cannot support the new size"):
        lists.resize(PrefixListInfo(LIST, Family.IPV4, 3, 20), 500)


@pytest.mark.parametrize(
    "code", ["PrefixListVersionMismatch", "IncorrectState", "ConcurrentMutationLimitExceeded"]
)
def test_given_a_racing_writer_when_written_then_a_conflict_to_replan(code: str) -> None:
    lists, stubber, _slept = stubbed_lists()
    stubber.add_client_error("modify_managed_prefix_list", service_error_code=code, http_status_code=400)

    with stubber, pytest.raises(RuleConflictError, match=code):
        lists.modify(PrefixListInfo(LIST, Family.IPV4, 3, 20), EntryBatch(remove=("54.0.0.1/32",)))
