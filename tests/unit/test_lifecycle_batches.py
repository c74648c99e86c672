"""A batch of lifecycle actions (a storm behind a buffering queue) costs one describe and at most one
publish per group, and never skips a publish that did not succeed."""

from __future__ import annotations

import pytest

from tests.unit.test_snapshot_service import A1, A2, A3, B1, Producer, action

STORM = [f"i-00000000000c{n:05x}" for n in range(10)]


def launch_storm(producer: Producer) -> None:
    for index, instance_id in enumerate(STORM):
        producer.join("asg-a", instance_id, f"54.9.0.{index + 1}")


def test_a_batch_of_launches_is_described_once_published_once_and_every_hook_continued() -> None:
    producer = Producer()
    launch_storm(producer)

    outcome = producer.service.on_lifecycle_actions([action(i, launching=True) for i in STORM])

    assert producer.journal.count("describe asg-a") == 1
    assert [snapshot.version for snapshot in producer.topic.published] == [1]
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
    with pytest.raises(ConnectionError):
        producer.service.on_lifecycle_actions([action(i, launching=True) for i in STORM[:5]])
    producer.topic.failure = None

    producer.service.on_lifecycle_actions([action(i, launching=True) for i in STORM[5:]])

    assert [snapshot.version for snapshot in producer.topic.published] == [2]
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

    producer.service.on_lifecycle_actions(
        [action(A3, launching=True), action(A1, launching=False), action(B1, launching=False, group="asg-b")]
    )

    published = {snapshot.source.group: snapshot for snapshot in producer.topic.published}
    assert sorted(published) == ["asg-a", "asg-b"]
    assert {m.instance_id for m in published["asg-a"].members} == {A2, A3}
    assert published["asg-b"].members == ()
    assert published["asg-a"].cause.instance_id is None, "a batch does not pretend to have one cause"
