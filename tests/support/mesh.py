"""A multi-region sgmesh deployment on moto, driven through the real Lambda handlers.

Each region gets what the per-region stack declares: an Auto Scaling group with lifecycle hooks, a
managed security group, a table, a topic and a queue; every queue subscribes to every topic.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from unittest import mock

import boto3

from consumers import apply
from producers import lifecycle, trueup
from tests.support.events import LambdaContext, lifecycle_event, sqs_event
from tests.support.lifecycle_hooks import LifecycleHookEmulator
from tests.support.recording import ApiCall, RecordingClientFactory

ACCOUNT = "123456789012"
DEFAULT_REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
OPERATOR_RULE = ("tcp", 22, 22, "203.0.113.7/32")
LAUNCH_HOOK = "sgmesh-launching"
TERMINATE_HOOK = "sgmesh-terminating"

Permission = tuple[str, int, int, str]


@cache
def _image_id(region: str) -> str:
    """moto's AMI catalogue survives resets and is slow to list: look it up once per session."""
    images = boto3.client("ec2", region_name=region).describe_images(Owners=["amazon"])["Images"]
    image_id: str = images[0]["ImageId"]
    return image_id


@dataclass
class RegionStack:
    region: str
    group_name: str
    security_group_id: str
    table_name: str
    topic_arn: str
    queue_url: str
    queue_arn: str
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Invocation:
    region: str
    handler: str
    calls: tuple[ApiCall, ...]
    result: Any


class Mesh:
    def __init__(
        self,
        factory: RecordingClientFactory,
        hooks: LifecycleHookEmulator,
        *,
        regions: tuple[str, ...] = DEFAULT_REGIONS,
        cluster: str = "demo",
        ports: str = "tcp:7000-7001,tcp:9042",
        settings: dict[str, str] | None = None,
    ) -> None:
        self.factory = factory
        self.hooks = hooks
        self.regions = regions
        self.cluster = cluster
        self.ports = ports
        self.extra_settings = settings or {}
        self.stacks: dict[str, RegionStack] = {}
        self.invocations: list[Invocation] = []

    # -- provisioning ---------------------------------------------------------------------------

    def provision(self, instances_per_region: int = 2) -> Mesh:
        for region in self.regions:
            self.stacks[region] = self._provision_region(region, instances_per_region)
        topics = [stack.topic_arn for stack in self.stacks.values()]
        for stack in self.stacks.values():
            for topic_arn in topics:
                self.sns(topic_arn.split(":")[3]).subscribe(
                    TopicArn=topic_arn, Protocol="sqs", Endpoint=stack.queue_arn
                )
            stack.environment = {
                "AWS_REGION": stack.region,
                "SGMESH_CLUSTER": self.cluster,
                "SGMESH_TABLE_NAME": stack.table_name,
                "SGMESH_TOPIC_ARN": stack.topic_arn,
                "SGMESH_ASG_NAMES": stack.group_name,
                "SGMESH_SECURITY_GROUP_IDS": stack.security_group_id,
                "SGMESH_PORTS": self.ports,
                "SGMESH_PEER_TOPIC_ARNS": ",".join(topics),
                "SGMESH_ADDRESS": "public",
                **self.extra_settings,
            }
        return self

    def _provision_region(self, region: str, instances: int) -> RegionStack:
        ec2 = self.ec2(region)
        image_id = _image_id(region)
        subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        ec2.create_launch_template(
            LaunchTemplateName=f"sgmesh-{region}",
            LaunchTemplateData={"ImageId": image_id, "InstanceType": "t3.micro"},
        )
        group_name = f"sgmesh-{region}"
        autoscaling = self.autoscaling(region)
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group_name,
            LaunchTemplate={"LaunchTemplateName": f"sgmesh-{region}"},
            MinSize=0,
            MaxSize=20,
            DesiredCapacity=instances,
            VPCZoneIdentifier=subnet_id,
        )
        for hook, transition in (
            (LAUNCH_HOOK, "autoscaling:EC2_INSTANCE_LAUNCHING"),
            (TERMINATE_HOOK, "autoscaling:EC2_INSTANCE_TERMINATING"),
        ):
            autoscaling.put_lifecycle_hook(
                AutoScalingGroupName=group_name,
                LifecycleHookName=hook,
                LifecycleTransition=transition,
                HeartbeatTimeout=300,
                DefaultResult="CONTINUE",
            )
        group_id = ec2.create_security_group(GroupName=f"sgmesh-{self.cluster}", Description="sgmesh test")[
            "GroupId"
        ]
        protocol, from_port, to_port, cidr = OPERATOR_RULE
        ec2.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[
                {
                    "IpProtocol": protocol,
                    "FromPort": from_port,
                    "ToPort": to_port,
                    "IpRanges": [{"CidrIp": cidr, "Description": "operator bastion"}],
                }
            ],
        )
        table_name = f"sgmesh-{region}"
        self.dynamodb(region).create_table(
            TableName=table_name,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        topic_arn = self.sns(region).create_topic(Name=f"sgmesh-{self.cluster}")["TopicArn"]
        sqs = self.sqs(region)
        queue_url = sqs.create_queue(QueueName=f"sgmesh-{self.cluster}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return RegionStack(region, group_name, group_id, table_name, topic_arn, queue_url, queue_arn)

    # -- harness clients (not recorded: they play AWS and the operator, not the product) ----------

    def ec2(self, region: str) -> Any:
        return boto3.client("ec2", region_name=region)

    def autoscaling(self, region: str) -> Any:
        return boto3.client("autoscaling", region_name=region)

    def dynamodb(self, region: str) -> Any:
        return boto3.client("dynamodb", region_name=region)

    def sns(self, region: str) -> Any:
        return boto3.client("sns", region_name=region)

    def sqs(self, region: str) -> Any:
        return boto3.client("sqs", region_name=region)

    # -- invoking the real handlers ----------------------------------------------------------------

    @contextmanager
    def environment(self, region: str) -> Iterator[None]:
        with mock.patch.dict(os.environ, self.stacks[region].environment):
            yield

    def _invoke(self, region: str, name: str, handler: Any, event: dict[str, Any]) -> Any:
        first = len(self.factory.calls)
        with self.environment(region):
            result = handler(event, LambdaContext(function_name=f"sgmesh-{name}"))
        self.invocations.append(Invocation(region, name, tuple(self.factory.calls[first:]), result))
        return result

    def trueup(self, region: str, event: dict[str, Any] | None = None) -> Any:
        return self._invoke(region, "trueup", trueup.handler, event or {})

    def lifecycle(self, region: str, event: dict[str, Any]) -> Any:
        return self._invoke(region, "lifecycle", lifecycle.handler, event)

    def lifecycle_action(self, region: str, instance_id: str, *, launching: bool) -> Any:
        """Emit the lifecycle event AWS would send and let the producer handle it."""
        stack = self.stacks[region]
        hook = LAUNCH_HOOK if launching else TERMINATE_HOOK
        token = str(uuid.uuid4())
        self.hooks.expect(region, stack.group_name, hook, token, instance_id)
        event = lifecycle_event(
            region=region,
            group=stack.group_name,
            instance_id=instance_id,
            launching=launching,
            hook=hook,
            token=token,
        )
        return self.lifecycle(region, event)

    def consume(self, region: str, event: dict[str, Any]) -> Any:
        return self._invoke(region, "apply", apply.handler, event)

    def receive(self, region: str, max_messages: int = 10) -> list[dict[str, Any]]:
        stack = self.stacks[region]
        response = self.sqs(region).receive_message(
            QueueUrl=stack.queue_url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            VisibilityTimeout=0,
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def drain(self, region: str) -> list[dict[str, Any]]:
        """Take every message off the region's queue (moto scans the whole queue: keep it shallow)."""
        stack = self.stacks[region]
        taken: list[dict[str, Any]] = []
        while messages := self.receive(region):
            taken.extend(messages)
            self.sqs(region).delete_message_batch(
                QueueUrl=stack.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return taken

    def deliver(self, region: str, messages: list[dict[str, Any]]) -> Any:
        """Hand messages to the consumer as one SQS batch, as the event source mapping would."""
        stack = self.stacks[region]
        return self.consume(region, sqs_event(messages, queue_arn=stack.queue_arn, region=region))

    def settle(self) -> None:
        """Deliver everything queued in every region, ten at a time, until every queue is empty."""
        for region in self.regions:
            messages = self.drain(region)
            for start in range(0, len(messages), 10):
                response = self.deliver(region, messages[start : start + 10])
                assert response["batchItemFailures"] == [], response

    # -- the truth, observed independently of the product ----------------------------------------

    def live_instances(self, region: str) -> dict[str, str]:
        """instance id -> public IP of the group's running instances, as EC2 reports them."""
        stack = self.stacks[region]
        group = self.autoscaling(region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[stack.group_name]
        )["AutoScalingGroups"][0]
        ids = [instance["InstanceId"] for instance in group["Instances"]]
        if not ids:
            return {}
        reservations = self.ec2(region).describe_instances(InstanceIds=ids)["Reservations"]
        return {
            instance["InstanceId"]: instance["PublicIpAddress"]
            for reservation in reservations
            for instance in reservation["Instances"]
            if instance["State"]["Name"] == "running" and instance.get("PublicIpAddress")
        }

    def expected_permissions(self) -> set[Permission]:
        """(all members' addresses in every region) x (configured ports)."""
        ports = []
        for spec in self.ports.split(","):
            protocol, _, span = spec.partition(":")
            low, _, high = span.partition("-")
            ports.append((protocol, int(low), int(high or low)))
        addresses = {ip for region in self.regions for ip in self.live_instances(region).values()}
        return {(protocol, low, high, f"{ip}/32") for protocol, low, high in ports for ip in addresses}

    def ingress(self, region: str) -> list[dict[str, Any]]:
        group_id = self.stacks[region].security_group_id
        rules = self.ec2(region).describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group_id]}]
        )
        return [rule for rule in rules["SecurityGroupRules"] if not rule["IsEgress"]]

    def managed_permissions(self, region: str) -> set[Permission]:
        return {
            (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIpv4"])
            for rule in self.ingress(region)
            if rule.get("Description", "").split(" ")[0] == f"sgmesh:{self.cluster}"
        }

    def has_operator_rule(self, region: str) -> bool:
        return any(
            (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule.get("CidrIpv4")) == OPERATOR_RULE
            for rule in self.ingress(region)
        )

    def assert_converged(self) -> None:
        expected = self.expected_permissions()
        for region in self.regions:
            assert self.managed_permissions(region) == expected, f"{region} has not converged"
            assert self.has_operator_rule(region), f"{region} lost the operator's rule"

    def cross_region_writes(self) -> list[tuple[str, str, ApiCall]]:
        """Mutating calls any handler made to a region other than its own (must stay empty)."""
        return [
            (invocation.region, invocation.handler, call)
            for invocation in self.invocations
            for call in invocation.calls
            if call.mutating and call.region != invocation.region
        ]
