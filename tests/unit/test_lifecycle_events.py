"""Lifecycle events of groups with a warm pool: parsed from AWS's shapes, and membership decided right."""

from __future__ import annotations

import pytest

from schemas.inventory import GroupInstance
from schemas.lifecycle import LifecycleAction, Place, TrueupRequest, parse_producer_event
from tests.support.golden import golden
from tests.unit.test_snapshot_service import A1, A2, A3, Producer


@pytest.mark.parametrize(
    ("name", "launching", "origin", "destination", "joins_group"),
    [
        ("lifecycle_launch", True, Place.EC2, Place.GROUP, True),
        ("lifecycle_terminate", False, Place.GROUP, Place.EC2, False),
        ("lifecycle_launch_into_warm_pool", True, Place.EC2, Place.WARM_POOL, False),
        ("lifecycle_launch_from_warm_pool", True, Place.WARM_POOL, Place.GROUP, True),
        ("lifecycle_terminate_into_warm_pool", False, Place.GROUP, Place.WARM_POOL, False),
        ("lifecycle_terminate_from_warm_pool", False, Place.WARM_POOL, Place.EC2, False),
    ],
)
def test_given_a_golden_lifecycle_event_when_parsed_then_it_says_where_the_instance_goes(
    name: str, launching: bool, origin: Place, destination: Place, joins_group: bool
) -> None:
    event = golden(name)
    action = parse_producer_event(event)
    assert isinstance(action, LifecycleAction)
    assert action.instance_id == event["detail"]["EC2InstanceId"]
    assert action.token == event["detail"]["LifecycleActionToken"]
    assert (action.launching, action.origin, action.destination) == (launching, origin, destination)
    assert action.joins_group is joins_group


def test_given_an_event_without_origin_and_destination_then_the_transition_decides() -> None:
    event = golden("lifecycle_launch")
    del event["detail"]["Origin"], event["detail"]["Destination"]
    action = parse_producer_event(event)
    assert isinstance(action, LifecycleAction)
    assert (action.origin, action.destination, action.joins_group) == (None, None, True)


def test_given_a_place_aws_adds_later_then_the_transition_decides_instead_of_failing_the_event() -> None:
    event = golden("lifecycle_launch_into_warm_pool")
    event["detail"]["Origin"], event["detail"]["Destination"] = "ColdPool", "ColdPool"
    action = parse_producer_event(event)
    assert isinstance(action, LifecycleAction)
    assert (action.origin, action.destination, action.joins_group) == (None, None, True)


def _parsed(name: str, instance_id: str) -> LifecycleAction:
    event = golden(name)
    event["detail"]["AutoScalingGroupName"] = "asg-a"
    event["detail"]["EC2InstanceId"] = instance_id
    action = parse_producer_event(event)
    assert isinstance(action, LifecycleAction)
    return action


def test_given_a_launch_into_the_warm_pool_then_nothing_is_published_and_its_hook_is_continued() -> None:
    # GIVEN an instance launched into the warm pool, waiting at our launch hook (it has an address
    # until the pool stops it)
    producer = Producer()
    producer.service.trueup(TrueupRequest(("asg-a",)))
    producer.join("asg-a", A3, "54.1.0.3", state="Warmed:Pending:Wait")
    warming = _parsed("lifecycle_launch_into_warm_pool", A3)
    # WHEN its lifecycle event is handled
    published = producer.service.on_lifecycle_action(warming)
    # THEN the membership did not change, so nothing is published, and its action is completed
    assert published == []
    assert producer.published_members() == [A1, A2]
    assert producer.hooks.continued == [warming]


def test_given_a_warm_pool_bound_instance_then_its_warmed_state_keeps_it_out_and_its_action_is_not_held() -> (
    None
):
    # GIVEN an instance launched into the warm pool: it has an address until the pool stops it. (The
    # instance's state decides, not the action: a lifecycle event delivered again after the instance
    # changed place must not override what Auto Scaling lists now.)
    producer = Producer()
    producer.join("asg-a", A3, "54.1.0.3", state="Warmed:Pending:Wait")
    warming = _parsed("lifecycle_launch_into_warm_pool", A3)
    # WHEN it is handled
    outcome = producer.service.on_lifecycle_actions([warming])
    # THEN the published snapshot does not carry it, and its action is not held back for an address
    assert producer.published_members() == [A1, A2]
    assert outcome.completed == [warming]
    assert outcome.not_ready == []


def test_given_a_launch_from_the_warm_pool_then_it_is_published_with_its_new_address() -> None:
    # GIVEN a member scaled in to the warm pool, then started again with a new public IP
    producer = Producer()
    producer.join("asg-a", A3, "54.1.0.3", state="InService")
    producer.service.trueup(TrueupRequest(("asg-a",)))
    producer.groups.groups["asg-a"][-1] = GroupInstance(A3, "Warmed:Pending:Wait", "eu-west-1c")
    producer.service.on_lifecycle_action(_parsed("lifecycle_terminate_into_warm_pool", A3))
    assert producer.published_members() == [A1, A2]
    producer.groups.groups["asg-a"].pop()
    producer.join("asg-a", A3, "54.1.0.99", state="Pending:Wait")
    # WHEN its launch from the warm pool is handled
    returning = _parsed("lifecycle_launch_from_warm_pool", A3)
    producer.service.on_lifecycle_action(returning)
    # THEN the newest snapshot carries it with the new address only, and its action is completed
    (member,) = [m for m in producer.topic.published[-1].members if m.instance_id == A3]
    assert member.public_ipv4 == "54.1.0.99/32"
    assert producer.hooks.continued[-1] == returning


def test_given_a_launch_from_the_warm_pool_without_an_address_yet_then_it_waits_for_a_retry() -> None:
    producer = Producer()
    producer.join("asg-a", A3, None, state="Pending:Wait")
    returning = _parsed("lifecycle_launch_from_warm_pool", A3)
    outcome = producer.service.on_lifecycle_actions([returning])
    assert outcome.not_ready == [returning]
    assert returning not in producer.hooks.continued
