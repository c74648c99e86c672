"""The per-region stack as the local runtime provisions it: the settings AWS's guidance asks for."""

from __future__ import annotations

import json

import boto3

from sgmesh.local.embedded import EndpointSession
from sgmesh.local.stack import (
    RegionStack,
    StackSpec,
    provision_region,
    subscribe_to_peers,
)
from tests.support.mesh import TWO_REGIONS

SPEC = StackSpec(
    cluster="blue", consumer_timeout_seconds=20, heartbeat_timeout_seconds=120, default_result="ABANDON"
)


def provision_two(endpoint: str, spec: StackSpec) -> list[RegionStack]:
    session = EndpointSession(endpoint)
    stacks = [provision_region(session, region, spec, instances=1) for region in TWO_REGIONS]
    subscribe_to_peers(session, stacks, spec)
    return stacks


def test_given_a_spec_then_the_queue_redrives_to_a_dlq_that_outlives_it(aws: str) -> None:
    (stack, _other) = provision_two(aws, SPEC)
    sqs = boto3.client("sqs", region_name=stack.region)

    queue = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["All"])["Attributes"]

    assert stack.queue_url.endswith("/sgmesh-blue")
    assert stack.dlq_url.endswith("/sgmesh-blue-dlq")
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == 5
    # AWS's guidance for SQS event sources: at least six times the function's timeout, plus the
    # batching window
    assert int(queue["VisibilityTimeout"]) == 6 * 20 + SPEC.batching_window_seconds
    # A DLQ keeps the original enqueue time, so it must keep messages longer than the queue
    assert int(dlq["MessageRetentionPeriod"]) > int(queue["MessageRetentionPeriod"])


def test_given_a_spec_then_the_table_has_string_keys_and_a_ttl_on_expires_at(aws: str) -> None:
    (stack, _other) = provision_two(aws, SPEC)
    dynamodb = boto3.client("dynamodb", region_name=stack.region)

    table = dynamodb.describe_table(TableName=stack.table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]

    assert stack.table_name == "sgmesh-blue"
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def test_given_a_spec_then_both_lifecycle_hooks_carry_its_timeout_and_default_result(aws: str) -> None:
    (stack, _other) = provision_two(aws, SPEC)

    hooks = boto3.client("autoscaling", region_name=stack.region).describe_lifecycle_hooks(
        AutoScalingGroupName=stack.group_name
    )["LifecycleHooks"]

    assert stack.group_name == "sgmesh-blue-us-east-1"
    assert sorted(
        (h["LifecycleHookName"], h["LifecycleTransition"], h["HeartbeatTimeout"], h["DefaultResult"])
        for h in hooks
    ) == [
        ("sgmesh-blue-launching", "autoscaling:EC2_INSTANCE_LAUNCHING", 120, "ABANDON"),
        ("sgmesh-blue-terminating", "autoscaling:EC2_INSTANCE_TERMINATING", 120, "ABANDON"),
    ]


def test_given_two_regions_then_every_queue_gets_every_topic_in_envelopes(aws: str) -> None:
    stacks = provision_two(aws, SPEC)
    topics = [stack.topic_arn for stack in stacks]

    subscriptions = {}
    for stack in stacks:
        sns = boto3.client("sns", region_name=stack.region)
        for subscription in sns.list_subscriptions_by_topic(TopicArn=stack.topic_arn)["Subscriptions"]:
            attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
            subscriptions[(subscription["TopicArn"], subscription["Endpoint"])] = (
                subscription["Protocol"],
                attributes["Attributes"]["RawMessageDelivery"],
            )

    assert subscriptions == {
        (topic, stack.queue_arn): ("sqs", "false") for topic in topics for stack in stacks
    }
    # ... and each region's functions accept every topic, their own included
    for stack in stacks:
        assert stack.environment["SGMESH_PEER_TOPIC_ARNS"].split(",") == topics
        assert stack.environment["AWS_REGION"] == stack.region
        assert stack.environment["SGMESH_TOPIC_ARN"] == stack.topic_arn
        assert stack.environment["SGMESH_CLUSTER"] == "blue"
