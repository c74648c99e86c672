"""Every name the stack and the deploy derive from the cluster name is one AWS accepts for its resource.

moto checks no name rule; CloudFormation refuses a stack name with "_" at CreateStack, after the
artifacts stack and the uploads. Each rule below is read from the page cited with it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from infra.deploy.checks import check_plan
from infra.deploy.config import ClusterConfig
from infra.deploy.errors import DeployError
from infra.deploy.identity import Identity
from infra.deploy.names import topic_arn
from infra.deploy.template import ARTIFACTS_TEMPLATE, load_template
from infra.deploy.transform import transform
from schemas.names import ClusterName, stack_name
from tests.infra.conftest import CODE_URI, LAYER_URI
from tests.infra.intrinsics import Resolver

(CLUSTER_PATTERN,) = (constraint.pattern for constraint in get_args(ClusterName)[1:])
IDENTITY = Identity(account="123456789012", partition="aws", arn="arn:aws:iam::123456789012:root")


@dataclass(frozen=True)
class NameRule:
    """What AWS accepts as the name of one resource type, and the page that says so."""

    pattern: str
    max_length: int
    page: str
    forbidden_prefix: str | None = None

    def problem(self, name: str) -> str | None:
        if not re.fullmatch(self.pattern, name):
            return f"{name!r} does not match {self.pattern} ({self.page})"
        if len(name) > self.max_length:
            return f"{name!r} is longer than {self.max_length} ({self.page})"
        if self.forbidden_prefix and name.startswith(self.forbidden_prefix):
            return f"{name!r} starts with {self.forbidden_prefix} ({self.page})"
        return None


STACK = NameRule(
    r"[A-Za-z][A-Za-z0-9-]*",
    128,
    "CloudFormation API Reference, CreateStack, StackName: alphanumeric characters and hyphens, starting "
    "with an alphabetical character, at most 128 characters",
)
# The name property of each resource type the template names, with the rule for it.
RULES = {
    ("AWS::SNS::Topic", "TopicName"): NameRule(
        r"[A-Za-z0-9_-]+", 256, "Amazon SNS API Reference, CreateTopic, Name (standard topics)"
    ),
    ("AWS::Lambda::Function", "FunctionName"): NameRule(
        r"[A-Za-z0-9_-]+", 64, "AWS Lambda API Reference, CreateFunction, FunctionName (the name alone)"
    ),
    ("AWS::Logs::LogGroup", "LogGroupName"): NameRule(
        r"[.\-_/#A-Za-z0-9]+", 512, "Amazon CloudWatch Logs API Reference, CreateLogGroup, logGroupName"
    ),
    ("AWS::Events::Rule", "Name"): NameRule(
        r"[.\-_A-Za-z0-9]+", 64, "Amazon EventBridge API Reference, PutRule, Name"
    ),
    ("AWS::AutoScaling::LifecycleHook", "LifecycleHookName"): NameRule(
        r"[A-Za-z0-9\-_/]+", 255, "Amazon EC2 Auto Scaling API Reference, PutLifecycleHook, LifecycleHookName"
    ),
    ("AWS::KMS::Alias", "AliasName"): NameRule(
        r"alias/[a-zA-Z0-9/_-]+",
        256,
        "AWS KMS API Reference, CreateAlias, AliasName: alias/ and letters, digits, /, _, -; not alias/aws/",
        forbidden_prefix="alias/aws/",
    ),
    ("AWS::EC2::PrefixList", "PrefixListName"): NameRule(
        r".+", 255, "Amazon EC2 API Reference, CreateManagedPrefixList, PrefixListName", "com.amazonaws"
    ),
    # Dashboards are global to the account: the template's name carries the region.
    ("AWS::CloudWatch::Dashboard", "DashboardName"): NameRule(
        r"[A-Za-z0-9_-]+",
        255,
        "Amazon CloudWatch API Reference, PutDashboard, DashboardName: at most 255 of A-Z, a-z, 0-9, - and _",
    ),
}
# The property that names a resource of each type the stack has, named or left to CloudFormation
# (which then generates a valid name): a type missing here, or named without a rule, fails the tests.
NAMING_PROPERTY = {
    **dict(RULES),
    ("AWS::Lambda::LayerVersion", "LayerName"): NameRule(
        r"[a-zA-Z0-9_-]+", 140, "AWS Lambda API Reference, PublishLayerVersion, LayerName (the name alone)"
    ),
}
NAMING = dict(NAMING_PROPERTY.keys())
NAMING |= {
    "AWS::SQS::Queue": "QueueName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::S3::Bucket": "BucketName",
}
NAMELESS = {
    "AWS::KMS::Key",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::SQS::QueuePolicy",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Permission",
    "AWS::S3::BucketPolicy",
}


def generated_names(transformed: dict[str, Any], cluster: str) -> dict[str, tuple[NameRule, str]]:
    """Every name the stack gives a resource, resolved for this cluster: logical id -> (rule, name)."""

    def ref(logical_id: str) -> str:
        # A function's Ref is its name (what the log groups are named after); other ids do not matter here.
        if transformed["Resources"][logical_id]["Type"] == "AWS::Lambda::Function":
            return str(resolver.resolve(transformed["Resources"][logical_id]["Properties"]["FunctionName"]))
        return f"{logical_id}-id"

    resolver = Resolver(
        transformed,
        {
            "ClusterName": cluster,
            "TopicArns": topic_arn(IDENTITY, "eu-west-1", cluster),
            "AutoScalingGroupNames": "a,b,c,d,e",
            "SecurityGroupIds": "sg-0123456789abcdef0",
            "Ports": "tcp:1",
            "Target": "prefix-list",
            "AddressMode": "dual-stack",
        },
        {"AWS::Region": "eu-west-1", "AWS::AccountId": IDENTITY.account, "AWS::Partition": "aws"},
        ref=ref,
        getatt=lambda logical_id, attribute: f"arn:aws:x:eu-west-1:{IDENTITY.account}:{logical_id}",
    )
    names = {}
    for logical_id, resource in transformed["Resources"].items():
        if resource["Type"] in NAMELESS:
            continue
        name_property = NAMING[resource["Type"]]
        name = (resolver.resource(logical_id) or {}).get(name_property)
        if name is not None:
            rule = NAMING_PROPERTY.get((resource["Type"], name_property))
            assert rule is not None, f"{logical_id}.{name_property}: add AWS's rule for it to RULES"
            names[f"{logical_id}.{name_property}"] = (rule, name)
    return names


@functools.cache
def transformed_template() -> dict[str, Any]:
    """The transformed template, outside the Hypothesis test's arguments (which a failure prints)."""
    return transform(load_template(), "eu-west-1", CODE_URI, LAYER_URI)


@settings(max_examples=60, deadline=None)
@given(cluster=st.from_regex(CLUSTER_PATTERN, fullmatch=True))
def test_every_cluster_name_the_settings_accept_makes_only_names_aws_accepts(cluster: str) -> None:
    """GIVEN any cluster name the settings model (and the template's ClusterName) accepts, WHEN the
    stack and the deploy derive their names from it, THEN each one passes AWS's rule for its type."""
    problems = [STACK.problem(stack_name(cluster))]
    problems += [
        rule.problem(name) for rule, name in generated_names(transformed_template(), cluster).values()
    ]
    assert [problem for problem in problems if problem] == []


def test_every_resource_type_of_the_stack_is_known_named_or_nameless(transformed: dict[str, Any]) -> None:
    types = {resource["Type"] for resource in transformed["Resources"].values()}
    artifacts = {resource["Type"] for resource in load_template(ARTIFACTS_TEMPLATE)["Resources"].values()}
    assert (types | artifacts) - NAMELESS - set(NAMING) == set()


def test_the_stack_names_resources_through_the_cluster(transformed: dict[str, Any]) -> None:
    names = {where: name for where, (_rule, name) in generated_names(transformed, "c-1").items()}
    # The layer is named for its logical id (SAM), the same in every stack; every other name is the cluster's.
    assert {where for where, name in names.items() if "c-1" not in name} == {
        where for where in names if where.startswith("DependencyLayer")
    }
    # The ones other stacks and the local runtime compute (the hooks, the topic), and the longest.
    assert names["Topic.TopicName"] == "sgmesh-c-1"
    assert names["LifecycleFunction.FunctionName"] == "sgmesh-c-1-lifecycle"


@pytest.mark.parametrize("cluster", ["prod_1", "1" * 41, "-prod", "prod.eu", ""])
def test_a_cluster_name_aws_would_refuse_somewhere_is_refused_first_naming_it(
    tmp_path: Path, cluster: str
) -> None:
    """GIVEN a cluster name that some generated name could not carry, WHEN the deploy file is read (and
    the functions' settings), THEN it is refused before any AWS call, naming the key and the value."""
    with pytest.raises(ValidationError):
        TypeAdapter(ClusterName).validate_python(cluster)
    deploy_file = tmp_path / "sgmesh.toml"
    deploy_file.write_text(
        f'cluster = "{cluster}"\nports = "tcp:1"\nauto_scaling_groups = ["g"]\n'
        '[regions.eu-west-1]\nsecurity_groups = ["sg-0123456789abcdef0"]\n'
    )
    with pytest.raises(DeployError, match=re.escape(f"cluster={cluster!r}: String should match pattern")):
        ClusterConfig.load(deploy_file)
    assert not re.fullmatch(load_template()["Parameters"]["ClusterName"]["AllowedPattern"], cluster)


def test_a_cluster_named_like_the_artifacts_stack_is_refused() -> None:
    config = ClusterConfig.model_validate(
        {
            "cluster": "artifacts",
            "ports": "tcp:1",
            "auto_scaling_groups": ["g"],
            "regions": {"eu-west-1": {"security_groups": ["sg-0123456789abcdef0"]}},
        }
    )
    with pytest.raises(DeployError, match="cluster='artifacts' would name its stack sgmesh-artifacts"):
        check_plan(config, {"eu-west-1": topic_arn(IDENTITY, "eu-west-1", "artifacts")}, load_template())


@pytest.mark.parametrize(
    ("rule", "name"),
    [
        (STACK, "sgmesh-prod_1"),
        (STACK, "1-sgmesh"),
        (RULES[("AWS::Lambda::Function", "FunctionName")], "sgmesh-" + "x" * 48 + "-lifecycle"),
        (RULES[("AWS::KMS::Alias", "AliasName")], "alias/aws/sgmesh"),
    ],
)
def test_each_rule_refuses_what_aws_refuses(rule: NameRule, name: str) -> None:
    assert rule.problem(name) is not None


def test_no_queue_has_a_fixed_name(transformed: dict[str, Any]) -> None:
    """SQS refuses to create a queue with the name of one deleted less than 60 s before (Amazon SQS API
    Reference, DeleteQueue: "you must wait 60 seconds after deleting a queue before you can create
    another with the same name"): a stack deleted and deployed again at once would fail. So
    CloudFormation names every queue (the delivery DLQ's ARN reaches the other stacks as a parameter)."""
    named = [
        logical_id
        for logical_id, resource in transformed["Resources"].items()
        if resource["Type"] == "AWS::SQS::Queue" and "QueueName" in resource["Properties"]
    ]
    assert named == []
