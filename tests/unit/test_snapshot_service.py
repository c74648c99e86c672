"""The producer service over fakes: describe, claim n+1 after the describe, publish, then CONTINUE."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import pytest
from aws_lambda_powertools.logging import Logger

from producers.metrics import ProducerOutcome
from producers.service import Published, SnapshotService
from schemas.errors import (
    AddressNotAssignedError,
    SettingsError,
    SnapshotsNotPublishedError,
    VersionConflictError,
)
from schemas.events import Cause, CauseKind, Member, Source
from schemas.inventory import GroupInstance, InstanceAddresses
from schemas.ledger import epoch_milliseconds
from schemas.lifecycle import LifecycleAction, TrueupRequest
from schemas.settings import Settings
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
from tests.support.logs import extra

TOPIC = "arn:aws:sns:eu-west-1:111111111111:sgmesh-prod"
TOKEN = "6b1f7f4c-2a8e-4c8e-9d3c-3f2f0c8b1a11"
A1, A2, A3, B1 = "i-0000000000000a001", "i-0000000000000a002", "i-0000000000000a003", "i-0000000000000b001"
# The first version a producer claims at PRODUCED_AT on an empty ledger: the time in milliseconds.
V1 = epoch_milliseconds(PRODUCED_AT)


def producer_settings(**overrides: str) -> Settings:
    environment = {
        "SGMESH_CLUSTER": CLUSTER,
        "SGMESH_TABLE_NAME": "sgmesh-prod",
        "AWS_REGION": "eu-west-1",
        "SGMESH_TOPIC_ARN": TOPIC,
        "SGMESH_ASG_NAMES": "asg-a,asg-b",
    }
    return Settings.from_env(environment | overrides)


@dataclass
class Producer:
    """The service and its fakes, sharing one journal of what happened in which order."""

    journal: list[str] = field(default_factory=list)
    settings: Settings = field(default_factory=producer_settings)

    def __post_init__(self) -> None:
        self.groups = FakeGroupDirectory(
            {
                "asg-a": [
                    GroupInstance(A1, "InService", "eu-west-1a"),
                    GroupInstance(A2, "InService", "eu-west-1b"),
                ],
                "asg-b": [GroupInstance(B1, "InService", "eu-west-1a")],
            },
            self.journal,
        )
        self.addresses = FakeAddressDirectory(
            [
                InstanceAddresses(A1, public_ipv4="54.1.0.1", private_ipv4="10.1.0.1"),
                InstanceAddresses(A2, public_ipv4="54.1.0.2", private_ipv4="10.1.0.2"),
                InstanceAddresses(B1, public_ipv4="54.2.0.1", private_ipv4="10.2.0.1"),
            ]
        )
        self.ledger = FakeVersionLedger(self.journal)
        self.topic = FakeSnapshotTopic(self.journal)
        self.hooks = FakeLifecycleHooks(self.journal)
        self.outcomes = FakeProducerOutcomes()
        self.now = PRODUCED_AT
        self.event_ids = (UUID(int=n) for n in range(1, 1000))
        self.service = self._service()

    def _service(self) -> SnapshotService:
        return SnapshotService(
            settings=self.settings,
            groups=self.groups,
            addresses=self.addresses,
            ledger=self.ledger,
            topic=self.topic,
            hooks=self.hooks,
            outcomes=self.outcomes,
            logger=Logger(service="test"),
            clock=lambda: self.now,
            new_event_id=lambda: next(self.event_ids),
        )

    def redeploy(self, **overrides: str) -> None:
        """The stack deployed again with other settings: same table, topic and groups."""
        self.settings = producer_settings(**overrides)
        self.service = self._service()

    def join(
        self, group: str, instance_id: str, public_ipv4: str | None, state: str = "Pending:Wait"
    ) -> None:
        self.groups.groups[group].append(GroupInstance(instance_id, state, "eu-west-1c"))
        self.addresses.addresses[instance_id] = InstanceAddresses(
            instance_id, public_ipv4=public_ipv4, private_ipv4="10.1.0.99"
        )

    def leave(self, group: str, instance_id: str, state: str = "Terminating:Wait") -> None:
        """Auto Scaling holds the instance at the terminate hook (or moves it to the warm pool)."""
        instances = self.groups.groups[group]
        index = next(i for i, instance in enumerate(instances) if instance.instance_id == instance_id)
        instances[index] = GroupInstance(instance_id, state, instances[index].availability_zone)

    def another_producer_claims(self, group: str) -> None:
        """Another invocation commits the next version in the same table (outside our journal)."""
        version = self.ledger.versions.get((CLUSTER, group), 0) + 1
        self.ledger.versions[(CLUSTER, group)] = version
        self.journal.append(f"another producer claims {group} v{version}")

    def published_members(self, index: int = -1) -> list[str]:
        return [member.instance_id for member in self.topic.published[index].members]


def action(instance_id: str, *, launching: bool, group: str = "asg-a") -> LifecycleAction:
    return LifecycleAction(
        group_name=group, instance_id=instance_id, hook_name="sgmesh-hook", token=TOKEN, launching=launching
    )


# --- lifecycle ----------------------------------------------------------------------------------------


def test_given_launch_with_address_when_handled_then_published_with_it_and_hook_continued() -> None:
    producer = Producer()
    producer.join("asg-a", A3, "54.1.0.3")
    launch = action(A3, launching=True)

    published = producer.service.handle(launch)

    (snapshot,) = producer.topic.published
    assert snapshot.cluster == CLUSTER
    assert snapshot.source == Source(account="111111111111", region="eu-west-1", group="asg-a")
    assert snapshot.version == V1
    assert snapshot.produced_at == PRODUCED_AT
    assert snapshot.event_id == UUID(int=1)
    assert snapshot.cause == Cause(
        kind=CauseKind.LAUNCHING, instance_id=A3, lifecycle_hook="sgmesh-hook", lifecycle_token=TOKEN
    )
    assert snapshot.members == (
        Member(
            instance_id=A1,
            public_ipv4="54.1.0.1/32",
            private_ipv4="10.1.0.1/32",
            availability_zone="eu-west-1a",
            lifecycle_state="InService",
        ),
        Member(
            instance_id=A2,
            public_ipv4="54.1.0.2/32",
            private_ipv4="10.1.0.2/32",
            availability_zone="eu-west-1b",
            lifecycle_state="InService",
        ),
        Member(
            instance_id=A3,
            public_ipv4="54.1.0.3/32",
            private_ipv4="10.1.0.99/32",
            availability_zone="eu-west-1c",
            lifecycle_state="Pending:Wait",
        ),
    )
    assert published == [Published("asg-a", V1, str(UUID(int=1)), "message-1", 3)]
    assert producer.hooks.continued == [launch]
    assert producer.journal == [
        "read versions",
        "describe asg-a",
        f"claim asg-a 0->{V1} won",
        f"publish asg-a v{V1}",
        f"published asg-a {V1}",
        f"continue {A3}",
    ]


def test_given_launch_without_an_address_when_handled_then_retryable_error_and_hook_left_pending() -> None:
    producer = Producer()
    producer.join("asg-a", A3, None)

    with pytest.raises(AddressNotAssignedError, match=A3):
        producer.service.handle(action(A3, launching=True))

    assert all(A3 not in {m.instance_id for m in snapshot.members} for snapshot in producer.topic.published)
    assert producer.hooks.continued == []


def test_given_the_same_unready_launch_retried_then_the_unchanged_membership_is_not_published_again() -> None:
    producer = Producer()
    producer.join("asg-a", A3, None)
    with pytest.raises(AddressNotAssignedError):
        producer.service.handle(action(A3, launching=True))
    published = len(producer.topic.published)

    with pytest.raises(AddressNotAssignedError):
        producer.service.handle(action(A3, launching=True))

    assert len(producer.topic.published) == published


def test_given_private_mode_launch_without_private_address_then_address_not_assigned() -> None:
    producer = Producer(settings=producer_settings(SGMESH_ADDRESS="private"))
    producer.groups.groups["asg-a"].append(GroupInstance(A3, "Pending:Wait"))
    producer.addresses.addresses[A3] = InstanceAddresses(A3, public_ipv4="54.1.0.3")

    with pytest.raises(AddressNotAssignedError, match="private"):
        producer.service.handle(action(A3, launching=True))

    assert all(A3 not in {m.instance_id for m in snapshot.members} for snapshot in producer.topic.published)
    assert producer.hooks.continued == []


def test_given_terminate_when_handled_then_instance_excluded_and_hook_continued() -> None:
    # GIVEN A2 held at the terminate hook, as Auto Scaling lists it then
    producer = Producer()
    producer.leave("asg-a", A2)
    terminate = action(A2, launching=False)

    producer.service.handle(terminate)

    (snapshot,) = producer.topic.published
    assert [member.instance_id for member in snapshot.members] == [A1]
    assert snapshot.cause.kind is CauseKind.TERMINATING
    assert snapshot.cause.instance_id == A2
    assert producer.hooks.continued == [terminate]
    assert producer.journal[-1] == f"continue {A2}"


def test_given_action_for_an_unmanaged_group_when_handled_then_ignored() -> None:
    producer = Producer()
    producer.groups.groups["someone-elses"] = [GroupInstance(A3, "Pending:Wait")]

    published = producer.service.handle(action(A3, launching=True, group="someone-elses"))

    assert published == []
    assert producer.journal == []
    assert producer.topic.published == []
    assert producer.hooks.continued == []


def test_given_publish_fails_when_handled_then_error_propagates_and_hook_not_continued() -> None:
    producer = Producer()
    producer.topic.failure = ConnectionError("sns unreachable")

    with pytest.raises(ConnectionError):
        producer.service.handle(action(A2, launching=False))

    assert producer.hooks.continued == []
    assert producer.ledger.published == {}, "a claim whose publish failed is not a published version"

    # AND the retried invocation publishes under a newer version (the failed claim leaves a harmless gap)
    producer.topic.failure = None
    producer.service.handle(action(A2, launching=False))
    assert [snapshot.version for snapshot in producer.topic.published] == [V1 + 1]
    assert producer.ledger.published == {(CLUSTER, "asg-a"): V1 + 1}
    assert len(producer.hooks.continued) == 1


# --- versions -----------------------------------------------------------------------------------------


def test_given_stored_version_n_ahead_of_the_clock_then_n_plus_1_is_claimed_after_the_describe() -> None:
    producer = Producer()
    producer.ledger.versions[(CLUSTER, "asg-a")] = V1 + 41

    producer.service.handle(action(A2, launching=False))

    assert producer.topic.published[0].version == V1 + 42
    assert producer.ledger.versions[(CLUSTER, "asg-a")] == V1 + 42
    assert producer.journal[:3] == [
        "read versions",
        "describe asg-a",
        f"claim asg-a {V1 + 41}->{V1 + 42} won",
    ]


def test_given_stored_version_n_behind_the_clock_then_the_time_in_milliseconds_is_claimed() -> None:
    # GIVEN a ledger written by a release that counted 1, 2, 3... (or a clock that was behind)
    producer = Producer()
    producer.ledger.versions[(CLUSTER, "asg-a")] = 41

    producer.service.handle(action(A2, launching=False))

    # THEN the claim moves from the version read to the clock's, still conditioned on the one read
    assert producer.topic.published[0].version == V1
    assert producer.journal[:3] == ["read versions", "describe asg-a", f"claim asg-a 41->{V1} won"]


def test_given_another_producer_claims_during_our_describe_then_describe_again_and_take_next_version() -> (
    None
):
    producer = Producer()
    producer.ledger.versions[(CLUSTER, "asg-a")] = V1 + 4
    producer.leave("asg-a", A1)

    def meanwhile() -> None:
        producer.another_producer_claims("asg-a")
        producer.join("asg-a", A3, "54.1.0.3", state="InService")

    producer.groups.during_describe.append(meanwhile)

    published = producer.service.handle(action(A1, launching=False))

    assert [item.version for item in published] == [V1 + 6]
    assert [snapshot.version for snapshot in producer.topic.published] == [V1 + 6]
    # the published view is the second describe's, which saw A3 join
    assert producer.published_members() == [A2, A3]
    assert producer.journal[:7] == [
        "read versions",
        "describe asg-a",
        f"another producer claims asg-a v{V1 + 5}",
        f"claim asg-a {V1 + 4}->{V1 + 5} lost",
        "read versions",
        "describe asg-a",
        f"claim asg-a {V1 + 5}->{V1 + 6} won",
    ]
    assert len(producer.hooks.continued) == 1


def test_given_other_producers_keep_claiming_then_version_conflict_and_nothing_published() -> None:
    producer = Producer()
    producer.groups.during_describe.extend([lambda: producer.another_producer_claims("asg-a")] * 20)

    with pytest.raises(VersionConflictError, match="asg-a"):
        producer.service.handle(action(A1, launching=False))

    assert len(producer.groups.describes) == 5
    assert producer.topic.published == []
    assert producer.hooks.continued == []


# --- true-up ------------------------------------------------------------------------------------------


def test_given_trueup_when_handled_then_every_managed_group_is_published() -> None:
    producer = Producer()

    published = producer.service.handle(TrueupRequest())

    assert sorted((item.group, item.version, item.members) for item in published) == [
        ("asg-a", V1, 2),
        ("asg-b", V1, 1),
    ]
    assert {snapshot.source.group for snapshot in producer.topic.published} == {"asg-a", "asg-b"}
    assert all(snapshot.cause == Cause(kind=CauseKind.TRUEUP) for snapshot in producer.topic.published)
    assert producer.hooks.continued == []


def test_given_nothing_changed_when_trueup_runs_again_then_it_still_publishes_with_new_versions() -> None:
    producer = Producer()

    producer.service.handle(TrueupRequest())
    producer.service.handle(TrueupRequest())

    assert sorted((s.source.group, s.version) for s in producer.topic.published) == [
        ("asg-a", V1),
        ("asg-a", V1 + 1),
        ("asg-b", V1),
        ("asg-b", V1 + 1),
    ]
    assert producer.topic.published[0].members == producer.topic.published[2].members


def test_given_groups_that_cannot_publish_then_the_trueup_publishes_the_others_and_fails_naming_them() -> (
    None
):
    # GIVEN three groups, SNS refusing the first two's snapshots
    producer = Producer(settings=producer_settings(SGMESH_ASG_NAMES="asg-a,asg-b,asg-c"))
    producer.groups.groups["asg-c"] = [GroupInstance(A3, "InService")]
    producer.addresses.addresses[A3] = InstanceAddresses(A3, public_ipv4="54.3.0.1")
    producer.topic.refused.update({"asg-a", "asg-b"})

    # WHEN the true-up runs THEN it fails, naming both groups and why
    with pytest.raises(SnapshotsNotPublishedError, match=r"asg-a: publish of asg-a refused; asg-b: publish"):
        producer.service.handle(TrueupRequest())

    # AND the group after them was published all the same
    assert [snapshot.source.group for snapshot in producer.topic.published] == ["asg-c"]


def test_given_resync_request_when_handled_then_cause_is_resync() -> None:
    producer = Producer()

    producer.service.handle(TrueupRequest(("asg-b",), resync=True))

    (snapshot,) = producer.topic.published
    assert snapshot.source.group == "asg-b"
    assert snapshot.cause.kind is CauseKind.RESYNC


def test_given_trueup_for_an_unmanaged_group_then_ignored() -> None:
    producer = Producer()

    assert producer.service.handle(TrueupRequest(("someone-elses",))) == []
    assert producer.journal == []


def test_given_configured_group_that_does_not_exist_when_trueup_then_published_empty() -> None:
    producer = Producer()
    del producer.groups.groups["asg-b"]

    producer.service.handle(TrueupRequest(("asg-b",)))

    (snapshot,) = producer.topic.published
    assert snapshot.members == ()


def test_given_producer_settings_missing_when_built_then_settings_error_names_them() -> None:
    with pytest.raises(SettingsError, match="SGMESH_TOPIC_ARN"):
        Producer(settings=producer_settings(SGMESH_TOPIC_ARN=""))
    with pytest.raises(SettingsError, match="SGMESH_ASG_NAMES"):
        Producer(settings=producer_settings(SGMESH_ASG_NAMES=""))


# --- addresses the mode does not use never block anything -------------------------------------------


def test_given_an_instance_of_an_11_slash_16_vpc_with_a_ula_then_every_group_publishes_with_it() -> None:
    # GIVEN asg-a's new instance numbered 11.0.3.7 with a unique local IPv6 address (public mode)
    producer = Producer()
    producer.join("asg-a", A3, "54.1.0.3")
    producer.addresses.addresses[A3] = InstanceAddresses(
        A3, public_ipv4="54.1.0.3", private_ipv4="11.0.3.7", ipv6=("fd00:ec2::3",)
    )

    # WHEN the region's true-up runs
    producer.service.handle(TrueupRequest())

    # THEN both groups publish, A3 with every address, and nothing was left out
    published = {snapshot.source.group: snapshot for snapshot in producer.topic.published}
    assert sorted(published) == ["asg-a", "asg-b"]
    (member,) = [m for m in published["asg-a"].members if m.instance_id == A3]
    assert (member.private_ipv4, member.ipv6) == ("11.0.3.7/32", ("fd00:ec2::3/128",))
    assert producer.outcomes.counts == {}


def test_given_an_instance_whose_used_address_is_unusable_then_it_alone_is_left_out_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a launching instance whose public address is shared space (no internet address), public mode
    producer = Producer()
    producer.join("asg-a", A3, "100.64.0.3")
    launch = action(A3, launching=True)

    # WHEN its launch is handled
    outcome = producer.service.on_lifecycle_actions([launch])

    # THEN the group publishes without it, the metric counts it, a warning says which address and why
    assert producer.published_members() == [A1, A2]
    # (and its launch is one lifecycle action completed: the dashboard's count since issue 15)
    assert producer.outcomes.counts == {
        ProducerOutcome.INSTANCES_LEFT_OUT: 1,
        ProducerOutcome.LIFECYCLE_COMPLETED: 1,
    }
    (warning,) = [r for r in caplog.records if r.getMessage().startswith("instance left out")]
    assert (extra(warning, "instance_id"), extra(warning, "address")) == (A3, "100.64.0.3/32")
    assert "is not a public address" in extra(warning, "reason")
    # AND its action is completed, not retried for an address that will never be usable
    assert outcome.completed == [launch]
    assert outcome.not_ready == []


def test_given_an_unusable_address_in_a_field_the_mode_does_not_use_then_it_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = Producer()
    producer.join("asg-a", A3, "54.1.0.3")
    producer.addresses.addresses[A3] = InstanceAddresses(A3, public_ipv4="54.1.0.3", ipv6=("2001:db8::3",))

    producer.service.handle(TrueupRequest(("asg-a",)))

    (member,) = [m for m in producer.topic.published[-1].members if m.instance_id == A3]
    assert (member.public_ipv4, member.ipv6) == ("54.1.0.3/32", ())
    assert producer.outcomes.counts == {}
    (warning,) = [r for r in caplog.records if r.getMessage().startswith("address left out")]
    assert (extra(warning, "field"), extra(warning, "address")) == ("ipv6", "2001:db8::3/128")
