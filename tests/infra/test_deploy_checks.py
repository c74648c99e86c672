"""The deploy script's early failures, its subscription ordering and its stack handling, without AWS."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from infra.deploy.checks import check_parameters, check_plan
from infra.deploy.cloudformation import Outcome, TemplateBody, deploy_stack, deployed_parameters
from infra.deploy.config import ClusterConfig
from infra.deploy.errors import DeployError
from infra.deploy.identity import Identity
from infra.deploy.sns import topic_exists
from infra.deploy.subscriptions import subscription_steps, topic_order
from infra.deploy.template import (
    MAX_GROUPS,
    MAX_SECURITY_GROUPS,
    MAX_TOPICS,
    load_template,
    stack_parameters,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "infra" / "sgmesh.example.toml"
A, B, C, D = (
    f"arn:aws:sns:{region}:123456789012:sgmesh-demo" for region in ("r-a-1", "r-b-1", "r-c-1", "r-d-1")
)


def test_without_credentials_the_deploy_stops_first_with_a_clear_message(tmp_path: Path) -> None:
    """GIVEN no credentials anywhere boto3 looks, WHEN `python -m infra.deploy` runs (what `make
    deploy` runs), THEN it says so and stops before building or touching anything."""
    nowhere = tmp_path / "none"
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(nowhere),
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "infra.deploy", "--config", str(EXAMPLE), "--regions", "us-east-1,us-west-2"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("sgmesh deploy: no AWS credentials found")
    assert "AWS_PROFILE" in result.stderr
    assert result.stdout == ""


def own_topics(*regions: str) -> dict[str, str]:
    return {region: f"arn:aws:sns:{region}:123456789012:sgmesh-demo" for region in regions}


def test_the_example_deploy_file_passes_every_check() -> None:
    config = ClusterConfig.load(EXAMPLE)
    check_plan(config, own_topics(*config.regions), load_template())


def test_what_the_stacks_or_the_functions_would_refuse_is_refused_before_any_aws_call() -> None:
    # GIVEN a deploy file whose values each pass their type (the file loads: see test_deploy_config)
    config = ClusterConfig.model_validate(
        {
            "cluster": "demo",
            "ports": "tcp:9000-9080",
            "auto_scaling_groups": [f"group-{n}" for n in range(MAX_GROUPS + 1)],
            "lifecycle_heartbeat_timeout": 10,
            "prefix_list_max_entries": 1001,
            "peer_topic_arns": [f"arn:aws:sns:us-east-1:222222222222:t{n}" for n in range(MAX_TOPICS)],
            "regions": {
                "us-east-1": {
                    "security_groups": [f"sg-0123456789abcdef{n}" for n in range(MAX_SECURITY_GROUPS + 1)]
                },
                "moon-base": {"security_groups": ["sg-0123456789abcdef0"], "auto_scaling_groups": ["g"]},
            },
        }
    )

    # WHEN the plan is checked THEN every slot, template constraint and function setting it breaks is named
    with pytest.raises(DeployError) as refused:
        check_plan(config, own_topics("us-east-1"), load_template())
    with pytest.raises(DeployError) as refused_elsewhere:
        check_plan(config, own_topics("moon-base"), load_template())
    message = f"{refused.value}\n{refused_elsewhere.value}"
    for expected in (
        f"{MAX_TOPICS + 1} topics",
        # the default 120 s: launches would wait for the barrier as long as the hook waits for sgmesh
        "admission_timeout_seconds 120 must be below lifecycle_heartbeat_timeout 10",
        "us-east-1: 1 to 5 auto_scaling_groups, not 6",
        "us-east-1: at most 5 security_groups",
        "LifecycleHeartbeatTimeout='10': must be within 30-7200",
        "PrefixListMaxEntries='1001': must be within 1-1000",
        "moon-base: the functions would refuse their settings: AWS_REGION='moon-base'",
    ):
        assert expected in message


def test_a_setting_parameter_outside_the_template_constraints_is_named_with_them() -> None:
    """The deploy file's types refuse these values first; the template's own constraints stay a
    second check of every parameter, so a template that drifts from the types is still caught."""
    config = ClusterConfig.load(EXAMPLE)
    template = load_template()
    values = stack_parameters(template, config, "us-east-1", [own_topics("us-east-1")["us-east-1"]], [])
    assert check_parameters(template, values) == []

    problems = check_parameters(
        template,
        {**values, "ClusterName": "my.cluster", "Target": "prefix-lists", "MaxEventAgeSeconds": "59"},
    )

    message = "\n".join(problems)
    for expected in (
        "ClusterName='my.cluster': 1-40 letters",
        "Target='prefix-lists': must be one of security-group, sharded, prefix-list",
        "MaxEventAgeSeconds='59': must be within 1800-1209600",
    ):
        assert expected in message


@pytest.mark.parametrize(
    ("address", "ports", "max_entries", "refused"),
    [
        ("public", "tcp:7000-7001,tcp:9042", 40, "2 IPv4 port specs x prefix_list_max_entries 40 = 80"),
        ("dual-stack", "tcp:7000,icmpv6", 40, "2 IPv6 port specs x prefix_list_max_entries 40 = 80"),
        ("public", "tcp:7000-7001,tcp:9042", 30, None),
        ("ipv6", "tcp:7000,tcp:7001,icmp:8", 30, None),
    ],
)
def test_a_prefix_list_target_whose_reference_rules_would_not_fit_the_quota_is_refused(
    address: str, ports: str, max_entries: int, refused: str | None
) -> None:
    # GIVEN the prefix-list target at the default rule quota of 60
    config = ClusterConfig.model_validate(
        {
            "cluster": "demo",
            "ports": ports,
            "address": address,
            "auto_scaling_groups": ["cassandra"],
            "target": "prefix-list",
            "prefix_list_max_entries": max_entries,
            "regions": {"us-east-1": {"security_groups": ["sg-0123456789abcdef0"]}},
        }
    )

    # WHEN the deploy is checked THEN (port specs of a list's family) x MaxEntries must fit the quota
    if refused is None:
        check_plan(config, own_topics("us-east-1"), load_template())
        return
    with pytest.raises(DeployError, match="over rule_quota 60") as error:
        check_plan(config, own_topics("us-east-1"), load_template())
    assert refused in str(error.value)


def test_a_region_without_its_section_and_a_malformed_file_are_named(tmp_path: Path) -> None:
    config = ClusterConfig.load(EXAMPLE)
    with pytest.raises(
        DeployError, match=r"no \[regions.<name>\] section in the deploy file for: ap-south-1"
    ):
        check_plan(config, own_topics("us-east-1", "ap-south-1"), load_template())
    broken = tmp_path / "sgmesh.toml"
    broken.write_text('cluster = "demo"\nports = "tcp:1"\nregion = {}\n')
    with pytest.raises(DeployError, match=r"sgmesh\.toml"):
        ClusterConfig.load(broken)
    with pytest.raises(DeployError, match="no such deploy file"):
        ClusterConfig.load(tmp_path / "missing.toml")


# ----------------------------------------------------------------------------- subscription order


def test_own_topic_first_then_deployed_slots_kept_then_new_topics() -> None:
    assert topic_order(B, deployed=[], wanted=[A, B, C]) == (B, A, C)
    assert topic_order(B, deployed=[B, C], wanted=[A, B, C]) == (B, C, A)
    assert topic_order(A, deployed=[A, B, C], wanted=[A, C, D]) == (A, C, D)


def test_appending_topics_is_one_update() -> None:
    assert subscription_steps([A, B], [A, B, C, D]) == [(A, B, C, D)]
    assert subscription_steps([A, B, C], [A, B, C]) == [(A, B, C)]
    assert subscription_steps([A, B, C], [A, B]) == [(A, B)]


def test_a_removed_topic_that_shifts_others_drops_those_slots_before_adding_them_back() -> None:
    # B leaves: C would move from slot 3 to slot 2 in one update, which would unsubscribe it.
    assert subscription_steps([A, B, C, D], [A, C, D]) == [(A,), (A, C, D)]
    assert subscription_steps([A, B, C], [A, B, D, C]) == [(A, B), (A, B, D, C)]


def test_a_stack_whose_first_slot_is_not_its_own_topic_is_refused() -> None:
    with pytest.raises(DeployError, match="do not start with this region's own"):
        subscription_steps([B, A], [A, B])


# ----------------------------------------------------------------------------- stack handling


@dataclass
class FakeCloudFormation:
    """Just enough of CloudFormation for deploy_stack's decisions."""

    status: str | None
    update_error: str | None = None
    fails: bool = False
    calls: list[str] = field(default_factory=list)

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if self.status is None:
            raise ClientError(
                {"Error": {"Message": f"Stack with id {StackName} does not exist"}}, "DescribeStacks"
            )
        return {"Stacks": [{"StackName": StackName, "StackStatus": self.status}]}

    def create_stack(self, **arguments: Any) -> None:
        self.calls.append("create")

    def update_stack(self, **arguments: Any) -> None:
        self.calls.append("update")
        if self.update_error:
            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": self.update_error}}, "UpdateStack"
            )

    def get_waiter(self, name: str) -> FakeCloudFormation:
        self.calls.append(name)
        return self

    def wait(self, **arguments: Any) -> None:
        if self.fails:
            raise WaiterError("StackCreateComplete", "failed", {})

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        return {
            "StackEvents": [
                {"LogicalResourceId": StackName, "ResourceStatus": "ROLLBACK_IN_PROGRESS"},
                {
                    "LogicalResourceId": "Subscription2",
                    "ResourceStatus": "CREATE_FAILED",
                    "ResourceStatusReason": "AuthorizationError: not authorized to subscribe",
                },
            ]
        }


def deploy(cfn: FakeCloudFormation) -> Outcome:
    return deploy_stack(cfn, "sgmesh-demo", TemplateBody(TemplateBody="{}"), {}, {})  # type: ignore[arg-type]


def test_a_new_stack_is_created_and_waited_for() -> None:
    cfn = FakeCloudFormation(status=None)
    assert deploy(cfn) is Outcome.CREATED
    assert cfn.calls == ["create", "stack_create_complete"]


def test_an_update_that_changes_nothing_is_reported_as_unchanged() -> None:
    cfn = FakeCloudFormation(status="UPDATE_COMPLETE", update_error="No updates are to be performed.")
    assert deploy(cfn) is Outcome.UNCHANGED
    assert cfn.calls == ["update"]


def test_a_failed_stack_names_the_resources_that_failed() -> None:
    cfn = FakeCloudFormation(status="UPDATE_COMPLETE", fails=True)
    with pytest.raises(DeployError, match="Subscription2: AuthorizationError: not authorized to subscribe"):
        deploy(cfn)


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        ("ROLLBACK_COMPLETE", "aws cloudformation delete-stack --stack-name sgmesh-demo"),
        ("UPDATE_IN_PROGRESS", "is busy"),
        ("REVIEW_IN_PROGRESS", "is busy"),
    ],
)
def test_a_stack_that_cannot_be_updated_is_explained(status: str, advice: str) -> None:
    cfn = FakeCloudFormation(status=status)
    with pytest.raises(DeployError, match=advice):
        deploy(cfn)
    assert cfn.calls == []


# ----------------------------------------------------------------------------- peer topics


@dataclass
class RefusingSns:
    """An SNS client whose GetTopicAttributes answers with one error code."""

    code: str

    def get_topic_attributes(self, TopicArn: str) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": self.code, "Message": "denied"}}, "GetTopicAttributes")


@dataclass
class SessionOf:
    client_: Any

    def client(self, service: str, region_name: str) -> Any:
        return self.client_


DEPLOYER = Identity(account="111111111111", partition="aws", arn="arn:aws:iam::111111111111:role/deployer")


def test_a_peer_topic_this_account_may_not_read_says_whose_policy_and_what_to_redeploy() -> None:
    """GIVEN a peer account's topic that refuses GetTopicAttributes (its stack does not list this
    account, or predates the statement that grants it), WHEN the deploy checks it, THEN the message
    names both accounts, the key in the deploy file, the version to redeploy with, and the other
    possible cause (this identity's own policy), instead of blaming peer_accounts alone."""
    peer_topic = "arn:aws:sns:eu-west-1:222222222222:sgmesh-demo"
    with pytest.raises(DeployError) as refused:
        topic_exists(SessionOf(RefusingSns("AuthorizationError")), peer_topic, DEPLOYER)  # type: ignore[arg-type]
    message = str(refused.value)
    for expected in (
        "account 222222222222 does not let account 111111111111 read its topic",
        "with 111111111111 in peer_accounts, with this version of sgmesh",
        "arn:aws:iam::111111111111:role/deployer itself lacks sns:GetTopicAttributes",
    ):
        assert expected in message


def test_an_own_topic_this_identity_may_not_read_names_the_identity() -> None:
    own_topic = "arn:aws:sns:eu-west-1:111111111111:sgmesh-demo"
    with pytest.raises(DeployError, match=r"role/deployer may not read this account's topic"):
        topic_exists(SessionOf(RefusingSns("AuthorizationError")), own_topic, DEPLOYER)  # type: ignore[arg-type]


def test_a_topic_in_a_region_the_account_has_not_enabled_says_so() -> None:
    topic = "arn:aws:sns:af-south-1:111111111111:sgmesh-demo"
    with pytest.raises(DeployError, match=r"not valid in af-south-1 .*enable it for account 111111111111"):
        topic_exists(SessionOf(RefusingSns("InvalidClientTokenId")), topic, DEPLOYER)  # type: ignore[arg-type]


def test_a_missing_topic_is_absence_not_an_error() -> None:
    topic = "arn:aws:sns:eu-west-1:111111111111:sgmesh-demo"
    assert topic_exists(SessionOf(RefusingSns("NotFound")), topic, DEPLOYER) is False  # type: ignore[arg-type]


def test_a_stack_that_cannot_be_updated_stops_the_deploy_before_anything_is_built() -> None:
    """The deploy reads every region's stack first: one left by a failed first create stops it there,
    with the same advice, instead of after the build and the other regions' updates."""
    cfn = FakeCloudFormation(status="ROLLBACK_COMPLETE")
    with pytest.raises(DeployError, match="aws cloudformation delete-stack --stack-name sgmesh-demo"):
        deployed_parameters(cfn, "sgmesh-demo")  # type: ignore[arg-type]
    assert deployed_parameters(FakeCloudFormation(status=None), "sgmesh-demo") is None  # type: ignore[arg-type]
