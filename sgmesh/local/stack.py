"""The per-region stack, as the local runtime provisions it: the same resources and settings as
infra/template.yaml declares with its defaults (tests/infra/test_local_agrees.py compares the two)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from boto3.session import Session

from schemas.names import topic_region_and_account
from schemas.regions import sns_principals
from schemas.routing import FILTER_POLICY_SCOPE, subscription_filter_policy

ACCOUNT = "123456789012"  # moto's default account


@dataclass(frozen=True)
class StackSpec:
    """What every region's stack has, independent of the region."""

    cluster: str = "demo"
    ports: str = "tcp:7000-7001,tcp:9042"
    address: str = "public"
    consumer_timeout_seconds: int = 60
    max_receive_count: int = 5
    queue_retention_seconds: int = 4 * 86_400
    dlq_retention_seconds: int = 14 * 86_400
    batch_size: int = 10
    batching_window_seconds: int = 5
    heartbeat_timeout_seconds: int = 600
    default_result: str = "CONTINUE"
    trueup_interval_seconds: int = 15 * 60
    rule_quota: int = 60
    event_retention_days: int = 30
    max_event_age_seconds: int = 6 * 3600
    target: str = "security-group"
    observe: bool = False
    # Lifecycle events reach the producer in batches through a buffering queue (sgmesh/local/buffer.py)
    # instead of one invocation each, so a storm costs one describe per batch.
    lifecycle_buffer: bool = True
    lifecycle_timeout_seconds: int = 60
    buffer_batching_window_seconds: int = 2
    # Launches wait until every region acknowledges them, or the admission timeout (the template's
    # defaults). Off unless asked for: the stories written before the barrier complete launches once
    # published; the demo, `sgmesh local` and the barrier's own tests turn it on.
    admission_barrier: bool = False
    admission_timeout_seconds: int = 120
    admission_timeout_result: str = "CONTINUE"

    @property
    def visibility_timeout_seconds(self) -> int:
        # AWS's guidance for SQS event sources: at least six times the function timeout, plus the
        # batching window (the template's, tests/infra/test_local_agrees.py).
        return 6 * self.consumer_timeout_seconds + self.batching_window_seconds

    @property
    def buffer_visibility_timeout_seconds(self) -> int:
        return 6 * self.lifecycle_timeout_seconds + self.buffer_batching_window_seconds

    @property
    def buffer_name(self) -> str:
        return f"{self.name}-lifecycle-buffer"

    @property
    def lifecycle_rule(self) -> str:
        return f"{self.name}-lifecycle"

    @property
    def name(self) -> str:
        return f"sgmesh-{self.cluster}"

    @property
    def launch_hook(self) -> str:
        return f"{self.name}-launching"

    @property
    def terminate_hook(self) -> str:
        return f"{self.name}-terminating"


@dataclass
class RegionStack:
    """The resources of one region's stack, as provisioned."""

    region: str
    group_name: str
    security_group_id: str
    table_name: str
    topic_arn: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    environment: dict[str, str] = field(default_factory=dict)
    # What SNS could not deliver from this region's topic, to any region's queue (the template's
    # DeliveryDeadLetterQueue); and the lifecycle buffer, once created.
    delivery_dlq_url: str = ""
    delivery_dlq_arn: str = ""
    buffer_url: str = ""

    def settings_environment(self, spec: StackSpec, peer_topic_arns: list[str]) -> dict[str, str]:
        """The environment the template gives the functions of this region."""
        return {
            "AWS_REGION": self.region,
            "SGMESH_CLUSTER": spec.cluster,
            "SGMESH_TABLE_NAME": self.table_name,
            "SGMESH_TOPIC_ARN": self.topic_arn,
            "SGMESH_ASG_NAMES": self.group_name,
            "SGMESH_SECURITY_GROUP_IDS": self.security_group_id,
            "SGMESH_PORTS": spec.ports,
            "SGMESH_PEER_TOPIC_ARNS": ",".join(peer_topic_arns),
            "SGMESH_ADDRESS": spec.address,
            "SGMESH_RULE_QUOTA": str(spec.rule_quota),
            "SGMESH_EVENT_RETENTION_DAYS": str(spec.event_retention_days),
            "SGMESH_MAX_EVENT_AGE_SECONDS": str(spec.max_event_age_seconds),
            "SGMESH_TARGET": spec.target,
            "SGMESH_OBSERVE": "true" if spec.observe else "false",
            "SGMESH_ADMISSION_TIMEOUT_SECONDS": str(spec.admission_timeout_seconds),
            "SGMESH_ADMISSION_TIMEOUT_RESULT": spec.admission_timeout_result,
            # The lifecycle buffer's URL, once provisioned, where the spec plays the barrier (LocalMesh).
            "SGMESH_ADMISSION_QUEUE_URL": "",
            # The template creates prefix lists only for the prefix-list target, which this runtime
            # does not provision.
            "SGMESH_PREFIX_LIST_IDS": "",
        }


# moto's AMI catalogue survives resets and is slow to list: each region's is looked up once per process.
_image_ids: dict[str, str] = {}


def _image_id(ec2: Any, region: str) -> str:
    if region not in _image_ids:
        _image_ids[region] = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return _image_ids[region]


def provision_region(session: Session, region: str, spec: StackSpec, instances: int) -> RegionStack:
    """Create one region's stack and its cluster's Auto Scaling group (the group is the user's)."""
    ec2 = session.client("ec2", region_name=region)
    subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group_name = f"{spec.name}-{region}"
    ec2.create_launch_template(
        LaunchTemplateName=group_name,
        LaunchTemplateData={"ImageId": _image_id(ec2, region), "InstanceType": "t3.micro"},
    )
    autoscaling = session.client("autoscaling", region_name=region)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group_name,
        LaunchTemplate={"LaunchTemplateName": group_name},
        MinSize=0,
        MaxSize=50,
        DesiredCapacity=instances,
        VPCZoneIdentifier=subnet_id,
    )
    for hook, transition in (
        (spec.launch_hook, "autoscaling:EC2_INSTANCE_LAUNCHING"),
        (spec.terminate_hook, "autoscaling:EC2_INSTANCE_TERMINATING"),
    ):
        autoscaling.put_lifecycle_hook(
            AutoScalingGroupName=group_name,
            LifecycleHookName=hook,
            LifecycleTransition=transition,
            HeartbeatTimeout=spec.heartbeat_timeout_seconds,
            DefaultResult=spec.default_result,
        )
    security_group_id = ec2.create_security_group(GroupName=spec.name, Description=f"{spec.name} members")[
        "GroupId"
    ]
    create_table(session, region, spec.name)
    sns = session.client("sns", region_name=region)
    topic_arn = sns.create_topic(Name=spec.name)["TopicArn"]
    sns.set_topic_attributes(
        TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps(topic_policy(topic_arn))
    )
    queue_url, queue_arn, dlq_url = create_queue_with_dlq(
        session, region, spec, spec.name, spec.visibility_timeout_seconds
    )
    sqs = session.client("sqs", region_name=region)
    delivery_dlq_url = sqs.create_queue(
        QueueName=f"{spec.name}-delivery-dlq",
        Attributes={"MessageRetentionPeriod": str(spec.dlq_retention_seconds)},
    )["QueueUrl"]
    return RegionStack(
        region,
        group_name,
        security_group_id,
        spec.name,
        topic_arn,
        queue_url,
        queue_arn,
        dlq_url,
        delivery_dlq_url=delivery_dlq_url,
        delivery_dlq_arn=_queue_arn(sqs, delivery_dlq_url),
    )


def subscribe_to_peers(session: Session, stacks: list[RegionStack], spec: StackSpec) -> None:
    """Every region's queue subscribes to every region's topic, in SNS envelopes (raw delivery off),
    with its dead letters in the topic region's delivery DLQ; the queue and that DLQ admit exactly
    those topics, as the template's policies do."""
    topics = [stack.topic_arn for stack in stacks]
    dead_letters = {stack.region: stack.delivery_dlq_arn for stack in stacks}
    topic_regions = [topic_region_and_account(topic)[0] for topic in topics]
    for stack in stacks:
        for topic_arn in topics:
            subscribe(session, stack, topic_arn, dead_letters[topic_region_and_account(topic_arn)[0]])
        sqs = session.client("sqs", region_name=stack.region)
        for url, arn in (
            (stack.queue_url, stack.queue_arn),
            (stack.delivery_dlq_url, stack.delivery_dlq_arn),
        ):
            policy = queue_policy(arn, topics, sns_principals(stack.region, topic_regions))
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        stack.environment = stack.settings_environment(spec, topics)


def subscribe(session: Session, subscriber: RegionStack, topic_arn: str, dead_letter_arn: str) -> None:
    """The subscriber's queue to the topic, as the template's subscriptions: envelopes, dead letters in
    the topic region's delivery DLQ, and only the acknowledgements of the subscriber's own region's
    sources (schemas.routing)."""
    session.client("sns", region_name=topic_region_and_account(topic_arn)[0]).subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=subscriber.queue_arn,
        Attributes=subscription_attributes(subscriber.region, dead_letter_arn),
    )


def subscription_attributes(subscriber_region: str, dead_letter_arn: str) -> dict[str, str]:
    return {
        "RawMessageDelivery": "false",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn}),
        "FilterPolicyScope": FILTER_POLICY_SCOPE,
        "FilterPolicy": json.dumps(subscription_filter_policy(subscriber_region)),
    }


def topic_policy(topic_arn: str) -> dict[str, Any]:
    """The template's TopicPolicy of a single-account cluster: the owner only, over TLS."""
    account = topic_region_and_account(topic_arn)[1]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OwnerOnly",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": [
                    "sns:Publish",
                    "sns:Subscribe",
                    "sns:GetTopicAttributes",
                    "sns:ListSubscriptionsByTopic",
                ],
                "Resource": topic_arn,
            },
            _tls_only("sns:Publish", topic_arn),
        ],
    }


def queue_policy(queue_arn: str, topics: list[str], principals: tuple[str, ...]) -> dict[str, Any]:
    """The template's QueuePolicy (and DeliveryDeadLetterQueuePolicy): SNS may deliver from the
    cluster's topics only, over TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PeerTopicsOnly",
                "Effect": "Allow",
                "Principal": {"Service": list(principals)},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topics}},
            },
            _tls_only("sqs:*", queue_arn),
        ],
    }


def _tls_only(action: str, resource: str) -> dict[str, Any]:
    return {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": resource,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def create_table(session: Session, region: str, name: str) -> None:
    """The stack's table: string keys pk/sk, on demand, TTL on `expires_at`."""
    dynamodb = session.client("dynamodb", region_name=region)
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


def create_queue_with_dlq(
    session: Session, region: str, spec: StackSpec, name: str, visibility_timeout: int
) -> tuple[str, str, str]:
    """A queue redriving to its own DLQ after maxReceiveCount, the DLQ keeping messages longer.

    Returns (queue url, queue ARN, DLQ url).
    """
    sqs = session.client("sqs", region_name=region)
    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq",
        Attributes={"MessageRetentionPeriod": str(spec.dlq_retention_seconds)},
    )["QueueUrl"]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "MessageRetentionPeriod": str(spec.queue_retention_seconds),
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": _queue_arn(sqs, dlq_url),
                    "maxReceiveCount": str(spec.max_receive_count),
                }
            ),
        },
    )["QueueUrl"]
    return queue_url, _queue_arn(sqs, queue_url), dlq_url


def _queue_arn(sqs: Any, queue_url: str) -> str:
    arn: str = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return arn
