"""A batch of lifecycle actions (a storm behind a buffering queue) costs one describe and at most one
publish per group, never skips a publish that did not succeed, and a group that cannot publish fails
alone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from producers.metrics import ProducerOutcome
from schemas.inventory import GroupInstance
from schemas.lifecycle import Place, TrueupRequest
from tests.fakes import CLUSTER
from tests.unit.test_snapshot_service import A1, A2, A3, B1, V1, Producer, action

STORM = [f"i-00000000000c{n:05x}" for n in range(10)]


def launch_storm(producer: Producer) -> None:
    for index, instance_id in enumerate(STORM):
        producer.join("asg-a", instance_id, f"54.9.0.{index + 1}")


def test_a_batch_of_launches_is_described_once_published_once_and_every_hook_continued() -> None:
    producer = Producer()
    launch_storm(producer)

    outcome = producer.service.on_lifecycle_actions([action(i, launching=True) for i in STORM])

    assert producer.journal.count("describe asg-a") == 1
    assert [snapshot.version for snapshot in producer.topic.published] == [V1]
    assert set(producer.published_members()) == {A1, A2, *STORM}
    assert sorted(a.instance_id for a in producer.hooks.continued) == sorted(STORM)
    assert outcome.not_ready == []


def test_a_later_batch_that_changes_nothing_is_not_published_again_but_is_completed() -> None:
    producer = Producer()
    launch_storm(producer)
    producer.service.on_lifecycle_actions([action(i, launching=True) for i in STORM[:5]])

    # The jump launched all ten at once: the first batch already published every one of them.
    outcome = producer.service.on_lifecycle_actions([action(i, launching=True) for i in STORM[5:]])

    assert outcome.published == []
    assert len(producer.topic.published) == 1
    assert len(producer.hooks.continued) == len(STORM)


def test_a_membership_whose_publish_failed_is_published_by_the_next_batch() -> None:
    producer = Producer()
    launch_storm(producer)
    producer.topic.failure = ConnectionError("sns unreachable")
    failed = producer.service.on_lifecycle_actions([action(i, launching=True) for i in STORM[:5]])
    assert [a.instance_id for a in failed.to_retry] == STORM[:5]
    producer.topic.failure = None

    producer.service.on_lifecycle_actions([action(i, launching=True) for i in STORM[5:]])

    assert [snapshot.version for snapshot in producer.topic.published] == [V1 + 1]
    assert set(producer.published_members()) == {A1, A2, *STORM}


def test_an_unready_launch_fails_alone_and_the_rest_of_the_batch_completes() -> None:
    producer = Producer()
    producer.join("asg-a", A3, None)
    launch_storm(producer)

    outcome = producer.service.on_lifecycle_actions([action(i, launching=True) for i in [A3, *STORM]])

    assert [a.instance_id for a in outcome.not_ready] == [A3]
    assert A3 not in producer.published_members()
    assert sorted(a.instance_id for a in outcome.completed) == sorted(STORM)


def test_a_launch_whose_instance_the_group_no_longer_lists_is_not_retried_for_ever() -> None:
    # GIVEN a launch event for an instance that is gone by the time the batch is handled (abandoned,
    # or terminated by hand), beside a launch that is not ready yet
    producer = Producer()
    producer.join("asg-a", A3, None)
    gone = "i-00000000000dead0"

    # WHEN the batch is handled
    outcome = producer.service.on_lifecycle_actions(
        [action(gone, launching=True), action(A3, launching=True)]
    )

    # THEN only the instance still in the group waits for an address; the gone one is settled now
    assert [a.instance_id for a in outcome.not_ready] == [A3]
    assert [a.instance_id for a in outcome.completed] == [gone]


def test_a_mixed_batch_over_two_groups_publishes_each_once_with_leavers_removed() -> None:
    producer = Producer()
    producer.join("asg-a", A3, "54.1.0.3")
    producer.leave("asg-a", A1)
    producer.leave("asg-b", B1)

    producer.service.on_lifecycle_actions(
        [action(A3, launching=True), action(A1, launching=False), action(B1, launching=False, group="asg-b")]
    )

    published = {snapshot.source.group: snapshot for snapshot in producer.topic.published}
    assert sorted(published) == ["asg-a", "asg-b"]
    assert {m.instance_id for m in published["asg-a"].members} == {A2, A3}
    assert published["asg-b"].members == ()
    assert published["asg-a"].cause.instance_id is None, "a batch does not pretend to have one cause"


# --- a group that cannot publish fails alone ----------------------------------------------------------


def test_a_group_whose_publish_fails_fails_alone_and_the_other_groups_of_the_batch_publish_and_complete() -> (
    None
):
    # GIVEN a batch with a launch in each group, asg-a first, and SNS refusing asg-a's snapshots
    producer = Producer()
    producer.join("asg-a", A3, "54.1.0.3")
    b2 = "i-0000000000000b002"
    producer.join("asg-b", b2, "54.2.0.2")
    producer.topic.refused.add("asg-a")
    batch = [action(A3, launching=True), action(b2, launching=True, group="asg-b")]

    # WHEN the batch is handled
    outcome = producer.service.on_lifecycle_actions(batch)

    # THEN asg-b (after the failure) is published and its launch completed; asg-a's launch is retried
    assert [snapshot.source.group for snapshot in producer.topic.published] == ["asg-b"]
    assert [a.instance_id for a in producer.hooks.continued] == [b2]
    assert [a.instance_id for a in outcome.to_retry] == [A3]
    assert "refused" in str(outcome.errors["asg-a"])
    # AND the ledger records only what SNS accepted
    assert producer.ledger.published == {(CLUSTER, "asg-b"): V1}


# --- what "already published" means -------------------------------------------------------------------


def test_a_crash_between_publish_and_its_record_never_lets_a_later_batch_skip_a_real_change() -> None:
    # GIVEN A3's launch published (v1: A1, A2, A3); then A3 leaves, and that snapshot (v2: A1, A2)
    # reaches SNS but the function dies before recording it
    producer = Producer()
    producer.join("asg-a", A3, "54.1.0.3")
    producer.service.on_lifecycle_actions([action(A3, launching=True)])
    producer.leave("asg-a", A3)
    producer.ledger.crash_before_mark = SystemExit("the function dies")
    with pytest.raises(SystemExit):
        producer.service.on_lifecycle_actions([action(A3, launching=False)])
    producer.ledger.crash_before_mark = None
    assert [len(s.members) for s in producer.topic.published] == [3, 2]
    # ... and A3 comes back into service (the recorded digest is v1's: A1, A2, A3 again)
    producer.groups.groups["asg-a"][-1] = GroupInstance(A3, "InService", "eu-west-1c")

    # WHEN a later batch sees that membership
    outcome = producer.service.on_lifecycle_actions([action(A3, launching=True)])

    # THEN it publishes it: consumers hold v2 (without A3), whatever the ledger recorded last
    assert [len(s.members) for s in producer.topic.published] == [3, 2, 3]
    assert producer.published_members() == [A1, A2, A3]
    assert outcome.completed == [action(A3, launching=True)]


# --- the instance's current state decides ---------------------------------------------------------------


def test_a_scale_in_to_the_warm_pool_delivered_again_after_the_instance_came_back_keeps_it_a_member() -> None:
    # GIVEN A2 scaled in to the warm pool, published without it, then back in service (its launch
    # from the pool published it again)
    producer = Producer()
    back_to_pool = replace(action(A2, launching=False), origin=Place.GROUP, destination=Place.WARM_POOL)
    producer.leave("asg-a", A2, state="Warmed:Pending:Wait")
    producer.service.on_lifecycle_actions([back_to_pool])
    assert producer.published_members() == [A1]
    producer.leave("asg-a", A2, state="InService")
    producer.service.trueup(TrueupRequest(("asg-a",)))
    assert producer.published_members() == [A1, A2]

    # WHEN the scale-in's batch is delivered again (its visibility timeout passed before its delete)
    outcome = producer.service.on_lifecycle_actions([back_to_pool])

    # THEN A2, in service now, stays a member: nothing new is published, and the stale action is settled
    assert producer.published_members() == [A1, A2]
    assert outcome.completed == [back_to_pool]


def test_a_launch_for_an_instance_already_terminating_is_completed_not_retried_until_the_dlq() -> None:
    # GIVEN a launch action whose instance was terminated before its batch was handled: Auto Scaling
    # lists it at the terminate hook
    producer = Producer()
    producer.join("asg-a", A3, "54.1.0.3", state="Terminating:Wait")

    # WHEN the launch is handled
    outcome = producer.service.on_lifecycle_actions([action(A3, launching=True)])

    # THEN it is not a member, and its action is settled now (with a log line), not left to retry
    assert A3 not in producer.published_members()
    assert outcome.not_ready == []
    assert outcome.completed == [action(A3, launching=True)]


def test_every_action_completed_while_auto_scaling_held_it_is_counted_once() -> None:
    # GIVEN a storm of launches, WHEN the batch is published and completed
    producer = Producer()
    launch_storm(producer)
    producer.service.on_lifecycle_actions([action(i, launching=True) for i in STORM])
    # THEN the dashboard's LifecycleActionsCompleted counts each of them
    assert producer.outcomes.counts[ProducerOutcome.LIFECYCLE_COMPLETED] == len(STORM)
