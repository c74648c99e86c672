"""CloudFormation as the deploy uses it: create or update a stack and wait, and read what it holds."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, TypedDict

from botocore.exceptions import ClientError, WaiterError

from infra.deploy.errors import DeployError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, TagTypeDef
    from mypy_boto3_cloudformation.waiter import StackCreateCompleteWaiter, StackUpdateCompleteWaiter

NO_CHANGES = "No updates are to be performed"
# The stack creates roles (with generated names); the SAM transform already ran, so no AUTO_EXPAND.
CAPABILITIES: list[CapabilityType] = ["CAPABILITY_IAM"]
FAILED_FIRST_CREATE = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"})


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class TemplateUrl(TypedDict):
    TemplateURL: str


class TemplateBody(TypedDict):
    TemplateBody: str


def stack_status(cfn: CloudFormationClient, name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return stacks[0]["StackStatus"]


def deploy_stack(
    cfn: CloudFormationClient,
    name: str,
    template: TemplateUrl | TemplateBody,
    parameters: Mapping[str, str],
    tags: Mapping[str, str],
) -> Outcome:
    """Create or update a stack and wait for it; an update that changes nothing is no error."""
    status = stack_status(cfn, name)
    refuse_unusable(name, status)
    stack_parameters: list[ParameterTypeDef] = [
        {"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()
    ]
    stack_tags: list[TagTypeDef] = [{"Key": key, "Value": value} for key, value in tags.items()]
    if status is None:
        cfn.create_stack(
            StackName=name,
            Parameters=stack_parameters,
            Capabilities=CAPABILITIES,
            Tags=stack_tags,
            **template,
        )
        done: StackCreateCompleteWaiter | StackUpdateCompleteWaiter = cfn.get_waiter("stack_create_complete")
    else:
        try:
            cfn.update_stack(
                StackName=name,
                Parameters=stack_parameters,
                Capabilities=CAPABILITIES,
                Tags=stack_tags,
                **template,
            )
        except ClientError as error:
            if NO_CHANGES in str(error):
                return Outcome.UNCHANGED
            raise DeployError(f"stack {name}: {error}") from None
        done = cfn.get_waiter("stack_update_complete")
    try:
        done.wait(StackName=name, WaiterConfig={"Delay": 10, "MaxAttempts": 360})
    except WaiterError:
        raise DeployError(f"stack {name} failed:\n  " + "\n  ".join(_failure_reasons(cfn, name))) from None
    return Outcome.CREATED if status is None else Outcome.UPDATED


def _failure_reasons(cfn: CloudFormationClient, name: str) -> list[str]:
    events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    reasons = [
        f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
        for event in events
        if event.get("ResourceStatus", "").endswith("_FAILED")
    ]
    return reasons or [f"status {stack_status(cfn, name)}"]


def stack_outputs(cfn: CloudFormationClient, name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def refuse_unusable(name: str, status: str | None) -> None:
    """A stack that cannot be updated now stops the deploy, saying what to do."""
    if status in FAILED_FIRST_CREATE:
        raise DeployError(
            f"stack {name} is {status} after a failed first create: look at its events, delete it "
            f"(aws cloudformation delete-stack --stack-name {name}) and deploy again"
        )
    if status is not None and status.endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {name} is busy ({status}); let it finish (or delete its change set) first")


def deployed_parameters(cfn: CloudFormationClient, name: str) -> dict[str, str] | None:
    """The parameters the stack was last deployed with; None when it was never created. A stack that
    cannot be updated now (a failed first create, an update under way) stops the deploy here."""
    status = stack_status(cfn, name)
    if status is None:
        return None
    refuse_unusable(name, status)
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])}


def physical_id(cfn: CloudFormationClient, name: str, logical_id: str) -> str:
    # By listing: moto (the deploy tests) fails DescribeStackResource on these stacks.
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name):
        for resource in page["StackResourceSummaries"]:
            if resource["LogicalResourceId"] == logical_id:
                return resource["PhysicalResourceId"]
    raise DeployError(f"stack {name} has no {logical_id}")
