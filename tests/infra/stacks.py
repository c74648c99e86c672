"""A deployed sgmesh stack on moto, seen through its template: what moto built and what it skipped."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3

from schemas.names import stack_name
from tests.infra.intrinsics import Resolver

ACCOUNT = "123456789012"


@dataclass
class DeployedStack:
    region: str
    cluster: str

    @cached_property
    def _cfn(self) -> Any:
        return boto3.client("cloudformation", region_name=self.region)

    @cached_property
    def name(self) -> str:
        return stack_name(self.cluster)

    @cached_property
    def template(self) -> dict[str, Any]:
        """The template CloudFormation was given: the deploy script's offline transform."""
        body = self._cfn.get_template(StackName=self.name)["TemplateBody"]
        template: dict[str, Any] = body if isinstance(body, dict) else json.loads(body)
        return template

    @cached_property
    def parameters(self) -> dict[str, str]:
        stack = self._cfn.describe_stacks(StackName=self.name)["Stacks"][0]
        return {item["ParameterKey"]: item["ParameterValue"] for item in stack["Parameters"]}

    @cached_property
    def physical_ids(self) -> dict[str, str]:
        """The resources moto created, by logical id (moto lists the ones it skipped without one)."""
        paginator = self._cfn.get_paginator("list_stack_resources")
        return {
            summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
            for page in paginator.paginate(StackName=self.name)
            for summary in page["StackResourceSummaries"]
            if summary.get("LogicalResourceId")
        }

    def skipped(self) -> dict[str, str]:
        """Resources of the template (conditions applied) that moto did not create: logical id -> type."""
        resources = self.template["Resources"]
        return {
            logical_id: resource["Type"]
            for logical_id, resource in resources.items()
            if logical_id not in self.physical_ids
            and ("Condition" not in resource or self.resolver.condition(resource["Condition"]))
        }

    @cached_property
    def resolver(self) -> Resolver:
        return Resolver(
            self.template,
            self.parameters,
            {
                "AWS::Region": self.region,
                "AWS::AccountId": ACCOUNT,
                "AWS::Partition": "aws",
                "AWS::StackName": self.name,
                "AWS::URLSuffix": "amazonaws.com",
            },
            ref=lambda logical_id: self.physical_ids[logical_id],
            getatt=self.attribute,
        )

    def resolved(self, logical_id: str) -> dict[str, Any] | None:
        return self.resolver.resource(logical_id)

    def resolved_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Resolved properties of every resource of a type whose condition holds."""
        found = {}
        for logical_id, resource in self.template["Resources"].items():
            if resource["Type"] == resource_type:
                properties = self.resolved(logical_id)
                if properties is not None:
                    found[logical_id] = properties
        return found

    def attribute(self, logical_id: str, attribute: str) -> str:
        """Fn::GetAtt answered from what moto deployed."""
        resource_type = self.template["Resources"][logical_id]["Type"]
        physical_id = self.physical_ids[logical_id]
        if resource_type == "AWS::SQS::Queue" and attribute == "Arn":
            sqs = boto3.client("sqs", region_name=self.region)
            arn: str = sqs.get_queue_attributes(QueueUrl=physical_id, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            return arn
        if resource_type == "AWS::SQS::Queue" and attribute == "QueueName":
            return physical_id.rsplit("/", 1)[1]
        if resource_type == "AWS::Events::Rule" and attribute == "Arn":
            events = boto3.client("events", region_name=self.region)
            rule_arn: str = events.describe_rule(Name=physical_id)["Arn"]
            return rule_arn
        if resource_type == "AWS::KMS::Key" and attribute == "Arn":
            # Built from the key id: moto's DescribeKey fails on a key whose policy came from a template.
            return f"arn:aws:kms:{self.region}:{ACCOUNT}:key/{physical_id}"
        if resource_type == "AWS::DynamoDB::Table" and attribute == "Arn":
            dynamodb = boto3.client("dynamodb", region_name=self.region)
            table_arn: str = dynamodb.describe_table(TableName=physical_id)["Table"]["TableArn"]
            return table_arn
        raise KeyError(f"no Fn::GetAtt {logical_id}.{attribute} in these tests yet")

    def apply_wiring(self) -> None:
        """Create the queue policies and subscriptions moto skipped, from their resolved properties,
        through the SQS and SNS APIs: what CloudFormation would do with them."""
        self.apply_queue_policies()
        for subscription in self.resolved_of_type("AWS::SNS::Subscription").values():
            sns = boto3.client("sns", region_name=subscription["Region"])
            attributes = {
                "RawMessageDelivery": str(subscription["RawMessageDelivery"]).lower(),
                "RedrivePolicy": json.dumps(subscription["RedrivePolicy"]),
                "FilterPolicyScope": subscription["FilterPolicyScope"],
                "FilterPolicy": json.dumps(subscription["FilterPolicy"]),
            }
            arn = sns.subscribe(
                TopicArn=subscription["TopicArn"],
                Protocol=subscription["Protocol"],
                Endpoint=subscription["Endpoint"],
                Attributes=attributes,
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
            # SNS answers an existing subscription without changing it (moto too, and it may have made
            # one from a template it half understands): set what this slot declares, as CloudFormation does.
            for name, value in attributes.items():
                sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName=name, AttributeValue=value)

    def apply_queue_policies(self) -> None:
        sqs = boto3.client("sqs", region_name=self.region)
        for policy in self.resolved_of_type("AWS::SQS::QueuePolicy").values():
            for queue_url in policy["Queues"]:
                sqs.set_queue_attributes(
                    QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy["PolicyDocument"])}
                )

    def apply_topic_policy_and_hooks(self) -> None:
        """The topic policy and lifecycle hooks moto skipped, through the SNS and Auto Scaling APIs
        (the named groups must exist)."""
        sns = boto3.client("sns", region_name=self.region)
        for policy in self.resolved_of_type("AWS::SNS::TopicPolicy").values():
            for topic_arn in policy["Topics"]:
                sns.set_topic_attributes(
                    TopicArn=topic_arn,
                    AttributeName="Policy",
                    AttributeValue=json.dumps(policy["PolicyDocument"]),
                )
        autoscaling = boto3.client("autoscaling", region_name=self.region)
        for hook in self.resolved_of_type("AWS::AutoScaling::LifecycleHook").values():
            autoscaling.put_lifecycle_hook(**{**hook, "HeartbeatTimeout": int(hook["HeartbeatTimeout"])})
