"""`sgmesh doctor`: every region's wiring read from AWS and checked; lost subscriptions re-created."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from cloud.clients import ClientFactory
from schemas.names import queue_arn, stack_name, topic_region_and_account
from sgmesh.meshfile import MeshFile
from sgmesh.wiring import (
    Diagnosis,
    Expected,
    Finding,
    Grant,
    Observed,
    Part,
    RegionWiring,
    Rule,
    Subscription,
    check,
    expectations,
    lifecycle_rule,
    send_grant,
    subscribe_grant,
)

if TYPE_CHECKING:
    from mypy_boto3_sns.type_defs import SubscriptionTypeDef

T = TypeVar("T")

# The stack's outputs that locate its queues, and the mesh file's keys that may name them instead.
OUTPUT_KEYS = {
    "queue_url": "QueueUrl",
    "delivery_dead_letter_queue_url": "DeliveryDeadLetterQueueUrl",
    "lifecycle_buffer_url": "LifecycleBufferUrl",
}
NOT_FOUND = frozenset(
    {
        "NotFound",
        "NotFoundException",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "NoSuchBucket",
    }
)
DENIED = frozenset(
    {"AuthorizationError", "AuthorizationErrorException", "AccessDenied", "AccessDeniedException"}
)


@dataclass(frozen=True)
class Located:
    """A region's wiring, and the URLs its queues are read through."""

    wiring: RegionWiring
    queue_url: str
    dead_letter_url: str


class Unreadable(Exception):
    """AWS refused to show a part of the wiring to these credentials."""


class Doctor:
    """Reads the wiring of a mesh's regions (the mesh file, or the deploy's view of its stacks) and checks
    every region against the whole cluster; one instance per check, as it keeps what it read."""

    def __init__(self, mesh: MeshFile, clients: ClientFactory) -> None:
        self._mesh = mesh
        self._clients = clients
        self._topics: dict[str, dict[str, Any] | None] = {}
        self._subscribers: dict[str, dict[str, str]] = {}

    def diagnose(self, regions: Sequence[str] | None = None) -> Diagnosis:
        """Every region's wiring (or these regions'), checked against the cluster's."""
        selected = tuple(regions or self._mesh.regions)
        for region in selected:
            self._mesh.region(region)
        located: list[Located] = []
        findings: list[Finding] = []
        for region in self._mesh.regions:
            found = self.locate(region)
            if isinstance(found, Located):
                located.append(found)
            elif region in selected:
                findings.append(found)
        by_region = {item.wiring.region: item for item in located}
        cluster = self._mesh.cluster
        wirings = [item.wiring for item in located]
        for expected in expectations(cluster, wirings, self._mesh.peer_topic_arns, self._mesh.peer_accounts):
            if expected.region in selected:
                findings += check(expected, self._observe(expected, by_region[expected.region]))
        return Diagnosis(selected, tuple(findings))

    def repair(self, diagnosis: Diagnosis) -> Diagnosis:
        """Re-create each missing subscription and set back each one's attributes, as the template
        declares them (SNS answers an identical Subscribe with the existing subscription); then check
        again. Everything else is CloudFormation's to fix (make deploy)."""
        repaired = []
        for finding in diagnosis.findings:
            change = finding.repair
            if change is None:
                continue
            sns = self._clients.sns(topic_region_and_account(change.topic_arn)[0])
            if change.subscription_arn is None:
                sns.subscribe(
                    TopicArn=change.topic_arn,
                    Protocol="sqs",
                    Endpoint=change.queue_arn,
                    Attributes=change.attributes,
                    ReturnSubscriptionArn=True,
                )
            else:
                for name, value in change.attributes.items():
                    sns.set_subscription_attributes(
                        SubscriptionArn=change.subscription_arn, AttributeName=name, AttributeValue=value
                    )
            repaired.append(finding)
        if not repaired:
            return diagnosis
        self._topics.clear()
        self._subscribers.clear()
        after = Doctor(self._mesh, self._clients).diagnose(diagnosis.regions)
        return Diagnosis(after.regions, after.findings, tuple(repaired))

    # -- where each region's stack put its parts -------------------------------------------------------

    def locate(self, region: str) -> Located | Finding:
        """The region's wiring, from the mesh file or its stack's outputs; a finding when neither has it."""
        entry = self._mesh.region(region)
        urls = {key: getattr(entry, key) for key in OUTPUT_KEYS}
        if not all(urls.values()):
            outputs = self._stack_outputs(region)
            if outputs is None:
                return Finding(
                    region,
                    Part.STACK,
                    stack_name(self._mesh.cluster),
                    "not found in this region",
                    "deploy the region, or remove it from the mesh file",
                )
            urls = {key: urls[key] or outputs.get(output) for key, output in OUTPUT_KEYS.items()}
            if not all(urls.values()):
                return Finding(
                    region,
                    Part.STACK,
                    stack_name(self._mesh.cluster),
                    "has no output " + ", ".join(OUTPUT_KEYS[key] for key, url in urls.items() if not url),
                    "make deploy (an older sgmesh deployed it)",
                )
        partition = entry.topic_arn.split(":")[1]
        queue, dead_letters, buffer = (str(urls[key]) for key in OUTPUT_KEYS)
        wiring = RegionWiring(
            region=region,
            topic_arn=entry.topic_arn,
            queue_arn=queue_arn(queue, region, partition),
            dead_letter_arn=queue_arn(dead_letters, region, partition),
            buffer_arn=queue_arn(buffer, region, partition),
            groups=entry.asg_names,
        )
        return Located(wiring, queue, dead_letters)

    def _stack_outputs(self, region: str) -> dict[str, str] | None:
        try:
            stacks = self._clients.cloudformation(region).describe_stacks(
                StackName=stack_name(self._mesh.cluster)
            )
        except ClientError as error:
            if "does not exist" in str(error):
                return None
            raise
        return {
            output["OutputKey"]: output["OutputValue"] for output in stacks["Stacks"][0].get("Outputs", [])
        }

    # -- what each part is ----------------------------------------------------------------------------

    def _observe(self, expected: Expected, located: Located) -> Observed:
        unreadable: list[str] = []

        def read(what: str, reader: Callable[[], T], default: T) -> T:
            try:
                return reader()
            except Unreadable as error:
                unreadable.append(f"{what}: {error}")
                return default

        region, wiring = expected.region, expected.wiring
        subscriptions: dict[str, Subscription | None] = {}
        unread: set[str] = set()
        for topic in expected.topics:
            try:
                if self._topic(topic) is not None:
                    subscriptions[topic] = self._subscription(topic, wiring.queue_arn)
            except Unreadable as error:
                unreadable.append(f"{topic}: {error}")
                unread.add(topic)
        own = self._topic(wiring.topic_arn) if wiring.topic_arn not in unread else None
        subscribers = None
        if own is not None:
            subscribers = subscribe_grant(own.get("Policy")) or Grant(frozenset(), frozenset())
        return Observed(
            subscriptions=subscriptions,
            queue_grant=read("the queue's policy", lambda: self._send_grant(region, located.queue_url), None),
            dead_letter_grant=read(
                "the delivery DLQ's policy", lambda: self._send_grant(region, located.dead_letter_url), None
            ),
            topic_subscribers=subscribers,
            hooks=read("the lifecycle hooks", lambda: self._hooks(region, wiring.groups), {}),
            rule=read("the lifecycle rule", lambda: self._rule(region), None),
            unread_topics=frozenset(unread),
            unreadable=tuple(unreadable),
        )

    def _topic(self, topic: str) -> dict[str, Any] | None:
        """The topic's attributes; None when it does not exist."""
        if topic not in self._topics:
            sns = self._clients.sns(topic_region_and_account(topic)[0])
            self._topics[topic] = read_or_none(
                lambda: dict(sns.get_topic_attributes(TopicArn=topic)["Attributes"])
            )
        return self._topics[topic]

    def _subscription(self, topic: str, queue: str) -> Subscription | None:
        """The queue's subscription to the (existing) topic; None if it has none."""
        arn = self.subscription_arns(topic).get(queue)
        if arn is None:
            return None
        if arn == "PendingConfirmation":
            return Subscription(arn, raw_delivery=False, dead_letter_arn=None, pending=True)
        sns = self._clients.sns(topic_region_and_account(topic)[0])
        attributes = read_or_none(lambda: sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"])
        if attributes is None:
            return None
        redrive = attributes.get("RedrivePolicy")
        return Subscription(
            arn=arn,
            raw_delivery=attributes.get("RawMessageDelivery", "false") == "true",
            dead_letter_arn=json.loads(redrive).get("deadLetterTargetArn") if redrive else None,
            filter_policy=attributes.get("FilterPolicy") or None,
            filter_policy_scope=attributes.get("FilterPolicyScope") or None,
            pending=attributes.get("PendingConfirmation") == "true",
        )

    def subscription_arns(self, topic: str) -> dict[str, str]:
        """SQS endpoint -> subscription ARN, for the topic. A topic of this account lists its own
        subscriptions; another account's topic shows this account only its own, region-wide."""
        if topic not in self._subscribers:
            region, owner = topic_region_and_account(topic)
            sns = self._clients.sns(region)
            listed: list[SubscriptionTypeDef] = []
            if owner in {entry.topic_arn.split(":")[4] for entry in self._mesh.regions.values()}:
                pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
            else:
                pages = sns.get_paginator("list_subscriptions").paginate()
            read_or_none(lambda: listed.extend(item for page in pages for item in page["Subscriptions"]))
            self._subscribers[topic] = {
                item["Endpoint"]: item["SubscriptionArn"]
                for item in listed
                if item.get("TopicArn") == topic and item.get("Protocol") == "sqs"
            }
        return self._subscribers[topic]

    def _send_grant(self, region: str, queue_url: str) -> Grant | None:
        sqs = self._clients.sqs(region)
        attributes = read_or_none(
            lambda: sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"]).get(
                "Attributes", {}
            )
        )
        return send_grant(attributes.get("Policy")) if attributes is not None else None

    def _hooks(self, region: str, groups: Sequence[str]) -> dict[str, dict[str, str]]:
        autoscaling = self._clients.autoscaling(region)
        described = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=list(groups))
        existing = [group["AutoScalingGroupName"] for group in described["AutoScalingGroups"]]
        return {
            group: {
                hook["LifecycleHookName"]: hook["LifecycleTransition"]
                for hook in autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=group)["LifecycleHooks"]
            }
            for group in existing
        }

    def _rule(self, region: str) -> Rule | None:
        events = self._clients.events(region)
        name = lifecycle_rule(self._mesh.cluster)
        described = read_or_none(lambda: events.describe_rule(Name=name))
        if described is None:
            return None
        targets = events.list_targets_by_rule(Rule=name)["Targets"]
        pattern = json.loads(described.get("EventPattern") or "{}")
        return Rule(
            enabled=described.get("State") == "ENABLED",
            targets=frozenset(target["Arn"] for target in targets),
            groups=frozenset(pattern.get("detail", {}).get("AutoScalingGroupName", [])),
        )


def read_or_none(reader: Callable[[], T]) -> T | None:
    """What `reader` returns; None when what it reads does not exist; Unreadable when AWS refuses."""
    try:
        return reader()
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in NOT_FOUND or "does not exist" in str(error):
            return None
        if code in DENIED:
            raise Unreadable(str(error)) from None
        raise
