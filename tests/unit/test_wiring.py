"""The wiring checks: what each region needs from the whole cluster, and each difference found."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas.routing import subscription_filter_policy
from sgmesh.wiring import (
    ANY,
    Expected,
    Grant,
    Observed,
    Part,
    RegionWiring,
    Resubscribe,
    Rule,
    Subscription,
    check,
    expectations,
    lifecycle_hooks,
    send_grant,
    subscribe_grant,
)

ACCOUNT, PEER = "111111111111", "222222222222"
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")


def topic(region: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:sns:{region}:{account}:sgmesh-prod"


def wiring(region: str, account: str = ACCOUNT) -> RegionWiring:
    return RegionWiring(
        region=region,
        topic_arn=topic(region, account),
        queue_arn=f"arn:aws:sqs:{region}:{account}:sgmesh-prod-Queue-{region}",
        dead_letter_arn=f"arn:aws:sqs:{region}:{account}:sgmesh-prod-DeliveryDeadLetterQueue-{region}",
        buffer_arn=f"arn:aws:sqs:{region}:{account}:sgmesh-prod-LifecycleBuffer-{region}",
        groups=("cassandra",),
    )


def cluster(regions: Sequence[str] = REGIONS) -> list[Expected]:
    return expectations("prod", [wiring(region) for region in regions])


def healthy(expected: Expected) -> Observed:
    """What the template deploys, as AWS describes it."""
    subscriptions = {
        arn: Subscription(
            f"{arn}:{n}",
            raw_delivery=False,
            dead_letter_arn=expected.dead_letters[arn],
            filter_policy=json.dumps(subscription_filter_policy(expected.region)),
            filter_policy_scope="MessageAttributes",
        )
        for n, arn in enumerate(expected.topics)
    }
    grant = Grant(expected.principals, frozenset(expected.topics))
    return Observed(
        subscriptions=subscriptions,
        queue_grant=grant,
        dead_letter_grant=grant,
        topic_subscribers=Grant(expected.subscribers, frozenset({ANY})),
        hooks={group: lifecycle_hooks("prod") for group in expected.wiring.groups},
        rule=Rule(True, frozenset({expected.wiring.buffer_arn}), frozenset(expected.wiring.groups)),
    )


def problems(expected: Expected, observed: Observed) -> list[tuple[Part, str, str]]:
    return [(finding.part, finding.subject, finding.problem) for finding in check(expected, observed)]


# --- what each region needs -------------------------------------------------------------------------


def test_every_queue_needs_every_topic_with_its_regions_delivery_dlq() -> None:
    east, west, europe = cluster()

    assert east.topics == west.topics == (topic("us-east-1"), topic("us-west-2"), topic("eu-west-1"))
    # SNS keeps a subscription's dead letters in the topic's region: that region's delivery DLQ.
    assert europe.dead_letters == {topic(region): wiring(region).dead_letter_arn for region in REGIONS}
    assert east.principals == frozenset({"sns.amazonaws.com"})
    assert east.subscribers == frozenset({ACCOUNT})


def test_an_opt_in_region_adds_its_sns_principal_to_every_queue_it_delivers_to() -> None:
    # af-south-1 is an opt-in region: deliveries from it (and into it) need sns.af-south-1.amazonaws.com
    east, africa = cluster(("us-east-1", "af-south-1"))

    assert east.principals == africa.principals == {"sns.amazonaws.com", "sns.af-south-1.amazonaws.com"}
    grant = Grant(frozenset({"sns.amazonaws.com"}), frozenset(east.topics))

    assert problems(east, replace(healthy(east), queue_grant=grant)) == [
        (
            Part.QUEUE_POLICY,
            "sns.af-south-1.amazonaws.com",
            "does not admit this SNS principal: deliveries it makes are refused",
        )
    ]


def test_peer_topics_are_subscribed_with_this_accounts_dlq_and_peers_may_subscribe() -> None:
    peer_topic = topic("us-east-1", PEER)
    east, west = expectations("prod", [wiring("us-east-1"), wiring("us-west-2")], [peer_topic], [PEER])

    assert east.topics[-1] == peer_topic
    assert east.dead_letters[peer_topic] == wiring("us-east-1").dead_letter_arn
    assert west.dead_letters[peer_topic] == wiring("us-east-1").dead_letter_arn
    assert east.subscribers == {ACCOUNT, PEER}


# --- what is found ---------------------------------------------------------------------------------


def test_the_wiring_the_template_deploys_has_no_finding() -> None:
    for expected in cluster():
        assert check(expected, healthy(expected)) == []


@given(st.sets(st.sampled_from(range(len(REGIONS))), min_size=1))
def test_each_missing_subscription_is_found_with_the_subscription_that_repairs_it(lost: set[int]) -> None:
    # GIVEN eu-west-1's queue lost its subscriptions to some topics (recreated outside the deploy)
    europe = cluster()[2]
    observed = healthy(europe)
    gone = [europe.topics[index] for index in sorted(lost)]
    subscriptions = {arn: (None if arn in gone else found) for arn, found in observed.subscriptions.items()}

    findings = check(europe, replace(observed, subscriptions=subscriptions))

    # THEN each is found, and nothing else, with the template's subscription to create
    assert [(f.part, f.subject) for f in findings] == [(Part.SUBSCRIPTION, arn) for arn in gone]
    assert [f.repair for f in findings] == [
        Resubscribe(arn, europe.wiring.queue_arn, europe.dead_letters[arn]) for arn in gone
    ]
    assert all(f.repair and json.loads(f.repair.attributes["RedrivePolicy"]) for f in findings)
    assert {f.repair.attributes["RawMessageDelivery"] for f in findings if f.repair} == {"false"}


def test_a_subscription_with_other_attributes_is_set_back_in_place() -> None:
    east = cluster()[0]
    observed = healthy(east)
    arn = topic("us-west-2")
    found = observed.subscriptions[arn]
    assert found is not None
    changed = replace(found, raw_delivery=True, dead_letter_arn="arn:aws:sqs:us-west-2:111111111111:other")

    (raw, dead_letters) = check(
        east, replace(observed, subscriptions={**observed.subscriptions, arn: changed})
    )

    assert "raw delivery is on" in raw.problem
    assert "dead letters go to arn:aws:sqs:us-west-2:111111111111:other" in dead_letters.problem
    assert (
        raw.repair
        == dead_letters.repair
        == Resubscribe(arn, east.wiring.queue_arn, east.dead_letters[arn], found.arn)
    )


def test_a_subscription_without_redrive_or_with_another_filter_is_found() -> None:
    east = cluster()[0]
    observed = healthy(east)
    arn = topic("eu-west-1")
    changed = Subscription("s", raw_delivery=False, dead_letter_arn=None, filter_policy='{"a": ["b"]}')

    found = problems(east, replace(observed, subscriptions={**observed.subscriptions, arn: changed}))

    assert [problem.split(":")[0] for _part, _subject, problem in found] == [
        'its filter policy {"a"',
        "no redrive policy",
    ]


def test_a_subscription_without_the_templates_filter_is_found_and_its_repair_sets_it() -> None:
    # GIVEN us-east-1's subscription to eu-west-1's topic made by hand, with no filter policy, and one
    # filtering on the message body instead of its attributes
    east = cluster()[0]
    observed = healthy(east)
    arn, other = topic("eu-west-1"), topic("us-west-2")
    declared, declared_other = observed.subscriptions[arn], observed.subscriptions[other]
    assert declared is not None
    assert declared_other is not None
    bare = replace(declared, filter_policy=None, filter_policy_scope=None)
    on_body = replace(declared_other, filter_policy_scope="MessageBody")

    found = check(
        east, replace(observed, subscriptions={**observed.subscriptions, arn: bare, other: on_body})
    )

    # THEN both are found, and their repair sets the policy of the subscribing queue's region
    assert sorted((f.subject, f.problem.split(":")[0]) for f in found) == sorted(
        [
            (other, "its filter policy applies to the MessageBody, not the message attributes"),
            (arn, "no filter policy"),
        ]
    )
    for finding in found:
        assert finding.repair is not None
        assert json.loads(finding.repair.attributes["FilterPolicy"]) == subscription_filter_policy(
            "us-east-1"
        )
        assert finding.repair.attributes["FilterPolicyScope"] == "MessageAttributes"


def test_a_deleted_topic_is_reported_by_every_region_without_a_repair() -> None:
    gone = topic("us-west-2")
    for expected in cluster():
        observed = healthy(expected)
        subscriptions = {arn: found for arn, found in observed.subscriptions.items() if arn != gone}

        (finding,) = check(expected, replace(observed, subscriptions=subscriptions))

        assert (finding.part, finding.subject, finding.repair) == (Part.TOPIC, gone, None)


def test_a_policy_still_admitting_a_removed_regions_topic_is_a_stale_reference() -> None:
    # GIVEN eu-west-1 was torn down: the other stacks were not deployed again yet
    east, west = cluster(("us-east-1", "us-west-2"))
    stale = topic("eu-west-1")
    grant = Grant(east.principals, frozenset({*east.topics, stale}))

    findings = check(east, replace(healthy(east), queue_grant=grant, dead_letter_grant=grant))

    assert [(f.part, f.subject) for f in findings] == [
        (Part.QUEUE_POLICY, stale),
        (Part.DEAD_LETTER_POLICY, stale),
    ]
    assert all("stale" in f.problem and "make deploy REGIONS=" in f.fix for f in findings)
    assert check(west, healthy(west)) == []


def test_a_policy_that_misses_a_topic_or_admits_anything_is_found() -> None:
    east = cluster()[0]
    grant = Grant(east.principals, frozenset({topic("us-east-1"), topic("us-west-2"), ANY}))

    assert problems(east, replace(healthy(east), queue_grant=grant)) == [
        (Part.QUEUE_POLICY, topic("eu-west-1"), "does not admit the topic: its deliveries are refused"),
        (Part.QUEUE_POLICY, ANY, "admits any source"),
    ]
    assert problems(east, replace(healthy(east), dead_letter_grant=None)) == [
        (Part.DEAD_LETTER_POLICY, "", "missing: SNS may deliver to it from no topic")
    ]


def test_a_topic_policy_that_shuts_a_peer_out_or_lets_anyone_in_is_found() -> None:
    east = expectations("prod", [wiring("us-east-1")], peer_accounts=[PEER])[0]

    assert problems(
        east, replace(healthy(east), topic_subscribers=Grant(frozenset({ACCOUNT, ANY}), frozenset()))
    ) == [
        (Part.TOPIC_POLICY, PEER, "does not let this account subscribe its queue"),
        (Part.TOPIC_POLICY, ANY, "lets any account subscribe"),
    ]


def test_missing_hooks_groups_and_rule_targets_are_found() -> None:
    east = replace(cluster()[0], wiring=replace(wiring("us-east-1"), groups=("cassandra", "gone")))
    observed = healthy(east)
    hooks = {"cassandra": {"sgmesh-prod-launching": "autoscaling:EC2_INSTANCE_LAUNCHING"}}
    rule = Rule(
        False, frozenset({"arn:aws:lambda:us-east-1:111111111111:function:x"}), frozenset({"cassandra"})
    )

    found = problems(east, replace(observed, hooks=hooks, rule=rule))

    assert [(part, subject) for part, subject, _problem in found] == [
        (Part.HOOK, "cassandra: sgmesh-prod-terminating"),
        (Part.HOOK, "gone"),
        (Part.RULE, "sgmesh-prod-lifecycle"),
        (Part.RULE, "sgmesh-prod-lifecycle"),
        (Part.RULE, "sgmesh-prod-lifecycle"),
    ]
    assert [problem.split(":")[0].split(" ")[0] for _part, _subject, problem in found[2:]] == [
        "disabled",
        "does",
        "matches",
    ]
    assert problems(east, replace(observed, hooks={"cassandra": lifecycle_hooks("prod")}, rule=None)) == [
        (Part.HOOK, "gone", "no such Auto Scaling group"),
        (Part.RULE, "sgmesh-prod-lifecycle", "missing: lifecycle events reach no producer"),
    ]


def test_what_could_not_be_read_is_a_finding_not_a_false_alarm() -> None:
    east = cluster()[0]
    observed = healthy(east)
    unread = topic("us-west-2")
    subscriptions = {arn: found for arn, found in observed.subscriptions.items() if arn != unread}

    (finding,) = check(
        east,
        replace(
            observed, subscriptions=subscriptions, unread_topics=frozenset({unread}), unreadable=("denied",)
        ),
    )

    assert (finding.part, finding.problem) == (Part.STACK, "denied")


# --- policies as AWS returns them ------------------------------------------------------------------


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


TLS_ONLY = {
    "Sid": "TlsOnly",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "sqs:*",
    "Resource": "arn:aws:sqs:us-east-1:111111111111:q",
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def test_the_templates_queue_policy_grants_the_principals_for_exactly_its_topics() -> None:
    peer_topics_only = {
        "Sid": "PeerTopicsOnly",
        "Effect": "Allow",
        "Principal": {"Service": ["sns.amazonaws.com", "sns.af-south-1.amazonaws.com"]},
        "Action": "sqs:SendMessage",
        "Resource": "arn:aws:sqs:us-east-1:111111111111:q",
        "Condition": {"ArnEquals": {"aws:SourceArn": [topic("us-east-1"), topic("af-south-1")]}},
    }

    assert send_grant(policy(peer_topics_only, TLS_ONLY)) == Grant(
        frozenset({"sns.amazonaws.com", "sns.af-south-1.amazonaws.com"}),
        frozenset({topic("us-east-1"), topic("af-south-1")}),
    )
    assert send_grant(policy(TLS_ONLY)) is None
    assert send_grant(None) is None
    # A statement with no source condition admits any topic (and any sender of that principal).
    unlimited = {"Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": "*"}
    assert send_grant(policy(unlimited)) == Grant(frozenset({ANY}), frozenset({ANY}))


def test_topic_policies_name_their_subscribers_as_accounts() -> None:
    owner_only = {
        "Sid": "OwnerOnly",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes"],
        "Resource": topic("us-east-1"),
    }
    peers = {
        "Sid": "PeerAccountsSubscribeQueues",
        "Effect": "Allow",
        "Principal": {"AWS": [PEER]},
        "Action": "sns:Subscribe",
        "Resource": topic("us-east-1"),
        "Condition": {"StringEquals": {"sns:Protocol": "sqs"}},
    }
    # SNS's default policy: anyone, as long as the topic's owner is the account.
    default = {
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": ["SNS:Subscribe", "SNS:Publish"],
        "Resource": topic("us-east-1"),
        "Condition": {"StringEquals": {"AWS:SourceOwner": ACCOUNT}},
    }

    assert subscribe_grant(policy(owner_only, peers)).principals == {ACCOUNT, PEER}  # type: ignore[union-attr]
    assert subscribe_grant(policy(default)).principals == {ACCOUNT}  # type: ignore[union-attr]
    assert subscribe_grant(policy({**default, "Condition": {}})).principals == {ANY}  # type: ignore[union-attr]
