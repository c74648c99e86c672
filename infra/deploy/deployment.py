"""Deploy sgmesh to N regions: one stack per region, topics first, then every queue onto every topic."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, WaiterError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics  # type: ignore[import-untyped]
from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]
from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped]

from infra.build import CODE_ZIP, DEFAULT_OUT, LAYER_ZIP, BuildError, build
from schemas.errors import SettingsError
from schemas.names import AccountId, GroupName, SecurityGroupId, TopicArn
from schemas.rules import Permission
from schemas.settings import PortSpec, Settings, TargetMode

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, TagTypeDef
    from mypy_boto3_cloudformation.waiter import StackCreateCompleteWaiter, StackUpdateCompleteWaiter
    from mypy_boto3_s3 import S3Client

INFRA = Path(__file__).resolve().parent
TEMPLATE = INFRA / "template.yaml"
ARTIFACTS_TEMPLATE = INFRA / "artifacts.yaml"
ARTIFACTS_STACK = "sgmesh-artifacts"
KEY_PREFIX = "sgmesh/"
# The template's fixed slots (CloudFormation has no loops): hooks, write permissions, subscriptions.
MAX_GROUPS = 5
MAX_SECURITY_GROUPS = 5
MAX_TOPICS = 10
NO_CHANGES = "No updates are to be performed"
# The stack creates roles (with generated names); the SAM transform already ran, so no AUTO_EXPAND.
CAPABILITIES: list[CapabilityType] = ["CAPABILITY_IAM"]
FAILED_FIRST_CREATE = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"})
NO_CREDENTIALS = (
    "no AWS credentials found. Configure them before deploying, e.g. `export AWS_PROFILE=<profile>` "
    "(after `aws sso login --profile <profile>`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
)


class DeployError(Exception):
    """Something a platform engineer has to fix; the message says what."""


# ----------------------------------------------------------------------------- configuration


class RegionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    security_groups: tuple[SecurityGroupId, ...] = Field(min_length=1)
    auto_scaling_groups: tuple[GroupName, ...] | None = None
    alarm_topic_arn: str = ""


class ClusterConfig(BaseModel):
    """The deploy file (TOML): cluster-wide settings, and per-region ones under [regions.<name>]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: str
    ports: str
    auto_scaling_groups: tuple[GroupName, ...] = ()
    address: str = "public"
    target: str = "security-group"
    prefix_list_max_entries: int = 20
    rule_quota: int = 60
    max_event_age_seconds: int = 21600
    event_retention_days: int = 30
    lifecycle_heartbeat_timeout: int = 600
    lifecycle_default_result: str = "CONTINUE"
    trueup_schedule: str = "rate(15 minutes)"
    log_retention_days: int = 365
    peer_accounts: tuple[AccountId, ...] = ()
    peer_topic_arns: tuple[TopicArn, ...] = ()
    regions: dict[str, RegionConfig]

    @classmethod
    def load(cls, path: Path) -> ClusterConfig:
        try:
            return cls.model_validate(tomllib.loads(path.read_text()))
        except FileNotFoundError:
            raise DeployError(f"{path}: no such deploy file (start from infra/sgmesh.example.toml)") from None
        except (tomllib.TOMLDecodeError, ValidationError) as error:
            raise DeployError(f"{path}: {error}") from None

    def groups(self, region: str) -> tuple[str, ...]:
        return self.regions[region].auto_scaling_groups or self.auto_scaling_groups

    def parameters(self, region: str, topic_arns: Sequence[str]) -> dict[str, str]:
        """The stack's parameter values in one region (the template's names)."""
        settings = self.regions[region]
        return {
            "ClusterName": self.cluster,
            "TopicArns": ",".join(topic_arns),
            "PeerAccountIds": ",".join(self.peer_accounts),
            "AutoScalingGroupNames": ",".join(self.groups(region)),
            "SecurityGroupIds": ",".join(settings.security_groups),
            "Ports": self.ports,
            "AddressMode": self.address,
            "Target": self.target,
            "PrefixListMaxEntries": str(self.prefix_list_max_entries),
            "RuleQuota": str(self.rule_quota),
            "MaxEventAgeSeconds": str(self.max_event_age_seconds),
            "EventRetentionDays": str(self.event_retention_days),
            "LifecycleHeartbeatTimeout": str(self.lifecycle_heartbeat_timeout),
            "LifecycleDefaultResult": self.lifecycle_default_result,
            "TrueupSchedule": self.trueup_schedule,
            "AlarmTopicArn": settings.alarm_topic_arn,
            "LogRetentionInDays": str(self.log_retention_days),
        }


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse(path.read_text())
    return template


def check_parameters(template: Mapping[str, Any], values: Mapping[str, str]) -> list[str]:
    """What CloudFormation would refuse in these values, said before any stack is touched."""
    problems = []
    for name, spec in template["Parameters"].items():
        value = values.get(name, spec.get("Default"))
        if value is None:
            problems.append(f"{name} is required")
            continue
        value = str(value)
        items = value.split(",") if spec["Type"] == "CommaDelimitedList" else [value]
        pattern = spec.get("AllowedPattern")
        if pattern and not all(re.fullmatch(pattern, item) for item in items):
            problems.append(f"{name}={value!r}: {spec.get('ConstraintDescription', 'must match ' + pattern)}")
        if "AllowedValues" in spec and value not in {str(allowed) for allowed in spec["AllowedValues"]}:
            problems.append(f"{name}={value!r}: must be one of {', '.join(map(str, spec['AllowedValues']))}")
        if spec["Type"] == "Number" and not (
            spec.get("MinValue", float("-inf")) <= float(value) <= spec.get("MaxValue", float("inf"))
        ):
            problems.append(f"{name}={value!r}: must be within {spec.get('MinValue')}-{spec.get('MaxValue')}")
    return problems


def check_plan(
    config: ClusterConfig, regions: Sequence[str], topics: Sequence[str], template: Mapping[str, Any]
) -> None:
    """Fail before any AWS call on anything the stacks or the functions would reject."""
    problems: list[str] = []
    missing = [region for region in regions if region not in config.regions]
    if missing:
        raise DeployError(f"no [regions.<name>] section in the deploy file for: {', '.join(missing)}")
    if len(topics) > MAX_TOPICS:
        problems.append(f"{len(topics)} topics (regions and peer topics); a stack subscribes to {MAX_TOPICS}")
    for arn in config.peer_topic_arns:
        if _region_of(arn) not in regions:
            # SNS keeps a subscription's dead letters in the topic's region, in this account's stack there.
            problems.append(f"peer topic {arn}: deploy this account in its region {_region_of(arn)} too")
    problems += _prefix_list_weight_problems(config)
    for region in regions:
        groups = config.groups(region)
        if not groups or len(groups) > MAX_GROUPS:
            problems.append(f"{region}: 1 to {MAX_GROUPS} auto_scaling_groups, not {len(groups)}")
        if len(config.regions[region].security_groups) > MAX_SECURITY_GROUPS:
            problems.append(f"{region}: at most {MAX_SECURITY_GROUPS} security_groups")
        values = config.parameters(region, topics)
        problems += [f"{region}: {problem}" for problem in check_parameters(template, values)]
        try:
            _function_settings(values, region, topics[0])
        except SettingsError as error:
            problems.append(f"{region}: the functions would refuse their settings: {error}")
    if problems:
        raise DeployError("the deploy file has problems:\n  " + "\n  ".join(problems))


def _prefix_list_weight_problems(config: ClusterConfig) -> list[str]:
    """A group rule referencing a prefix list weighs its MaxEntries: the first plan must fit the quota."""
    if config.target != TargetMode.PREFIX_LIST.value:
        return []
    try:
        specs = [PortSpec.parse(text) for text in config.ports.split(",") if text.strip()]
    except ValueError:
        return []  # check_parameters names the bad port spec
    # The lists the stack creates for the address mode (one per family it admits).
    samples = {"IPv4": "192.0.2.1/32", "IPv6": "2001:db8::1/128"}
    families = {"ipv6": ("IPv6",), "dual-stack": ("IPv4", "IPv6")}.get(config.address, ("IPv4",))
    problems = []
    for family in families:
        sample = samples[family]
        references = sum(1 for spec in specs if Permission.for_spec(spec, sample) is not None)
        weight = references * config.prefix_list_max_entries
        if weight > config.rule_quota:
            problems.append(
                f"target prefix-list: {references} {family} port specs x prefix_list_max_entries "
                f"{config.prefix_list_max_entries} = {weight} rules per group, over rule_quota "
                f"{config.rule_quota}; lower prefix_list_max_entries (the consumer grows the lists as "
                "members join) or raise rule_quota and the account's quota L-0EA8095F"
            )
    return problems


def _function_settings(values: Mapping[str, str], region: str, topic_arn: str) -> Settings:
    """The settings the functions would read, validated as they will validate them."""
    return Settings.from_env(
        {
            "AWS_REGION": region,
            "SGMESH_CLUSTER": values["ClusterName"],
            # CloudFormation names the table; any valid name stands in for it here.
            "SGMESH_TABLE_NAME": "sgmesh-table",
            "SGMESH_TOPIC_ARN": topic_arn,
            "SGMESH_ASG_NAMES": values["AutoScalingGroupNames"],
            "SGMESH_SECURITY_GROUP_IDS": values["SecurityGroupIds"],
            "SGMESH_PORTS": values["Ports"],
            "SGMESH_PEER_TOPIC_ARNS": values["TopicArns"],
            "SGMESH_ADDRESS": values["AddressMode"],
            "SGMESH_RULE_QUOTA": values["RuleQuota"],
            "SGMESH_EVENT_RETENTION_DAYS": values["EventRetentionDays"],
            "SGMESH_MAX_EVENT_AGE_SECONDS": values["MaxEventAgeSeconds"],
            "SGMESH_TARGET": values["Target"],
        }
    )


# ----------------------------------------------------------------------------- subscription order


def topic_order(own: str, deployed: Sequence[str], wanted: Sequence[str]) -> tuple[str, ...]:
    """This region's topic first, then the deployed topics in their slots, then the new ones."""
    kept = [arn for arn in deployed if arn in wanted and arn != own]
    new = [arn for arn in wanted if arn not in deployed and arn != own]
    return (own, *kept, *new)


def subscription_steps(deployed: Sequence[str], desired: Sequence[str]) -> list[tuple[str, ...]]:
    """The topic lists to deploy in turn so that no subscription moves to another slot in one update.

    A moved slot would make CloudFormation subscribe the queue again (SNS answers with the existing
    subscription) and then delete the old slot, which unsubscribes it. So when a removed topic shifts
    the ones after it, the first update drops every slot from there on and the second re-adds them.
    """
    target = tuple(desired)
    moved = any(arn in deployed and deployed.index(arn) != slot for slot, arn in enumerate(target))
    if not moved:
        return [target]
    first_change = next(
        slot for slot, arn in enumerate(target) if slot >= len(deployed) or deployed[slot] != arn
    )
    if first_change == 0:
        raise DeployError(f"deployed topics {list(deployed)} do not start with this region's own {target[0]}")
    return [target[:first_change], target]


# ----------------------------------------------------------------------------- CloudFormation


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
    if status in FAILED_FIRST_CREATE:
        raise DeployError(
            f"stack {name} is {status} after a failed first create: look at its events, delete it "
            f"(aws cloudformation delete-stack --stack-name {name}) and deploy again"
        )
    if status is not None and status.endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {name} is busy ({status}); let it finish (or delete its change set) first")
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


def stack_parameter(cfn: CloudFormationClient, name: str, key: str) -> str | None:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return next((p["ParameterValue"] for p in stack.get("Parameters", []) if p["ParameterKey"] == key), None)


# ----------------------------------------------------------------------------- the SAM transform


def _no_managed_policies() -> dict[str, str]:
    # Every function has its own role in the template, so the transform never looks up a policy name.
    raise DeployError("the template names an AWS managed policy; it must not (least privilege)")


def transform(template: Mapping[str, Any], region: str, code_uri: str, layer_uri: str) -> dict[str, Any]:
    """The SAM transform, run here and not by CloudFormation: the stack then runs exactly the template
    that the tests deploy into moto, and no CAPABILITY_AUTO_EXPAND is needed."""
    sam = json.loads(json.dumps(template))
    sam["Globals"]["Function"]["CodeUri"] = code_uri
    sam["Resources"]["DependencyLayer"]["Properties"]["ContentUri"] = layer_uri
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    session = boto3.session.Session(region_name=region)
    translator = Translator(None, Parser(), boto_session=session, metrics=metrics)
    transformed: dict[str, Any] = translator.translate(
        sam, parameter_values={}, passthrough_metadata=True, get_managed_policy_map=_no_managed_policies
    )
    # The transform counts what it did; publishing to the dummy publisher discards the counts.
    metrics.publish()
    return transformed


# ----------------------------------------------------------------------------- the deployment


@dataclass(frozen=True)
class Identity:
    account: str
    partition: str
    arn: str


def caller_identity(session: boto3.session.Session, region: str) -> Identity:
    """Who deploys; fails with a clear message before anything else happens when nobody can."""
    if session.get_credentials() is None:
        raise DeployError(NO_CREDENTIALS)
    try:
        identity = session.client("sts", region_name=region).get_caller_identity()
    except NoCredentialsError:
        raise DeployError(NO_CREDENTIALS) from None
    except (ClientError, BotoCoreError) as error:
        raise DeployError(f"the AWS credentials do not work ({error}); refresh them, then deploy") from None
    return Identity(account=identity["Account"], partition=identity["Arn"].split(":")[1], arn=identity["Arn"])


def stack_name(cluster: str) -> str:
    return f"sgmesh-{cluster}"


def topic_arn(identity: Identity, region: str, cluster: str) -> str:
    """Deterministic (the template names the topic so), hence known before the topic exists."""
    return f"arn:{identity.partition}:sns:{region}:{identity.account}:sgmesh-{cluster}"


class Deployment:
    """Deploys one cluster's stacks in the given regions of one account."""

    def __init__(
        self,
        config: ClusterConfig,
        regions: Sequence[str],
        session: boto3.session.Session,
        log: Callable[[str], None],
    ) -> None:
        self._config = config
        self._regions = tuple(regions)
        self._session = session
        self._log = log
        self._template = load_template()
        self._template_urls: dict[tuple[str, tuple[str, ...]], str] = {}
        self._uris: dict[str, tuple[str, str, str]] = {}

    def run(self, identity: Identity, artifacts: Callable[[], Path]) -> dict[str, tuple[str, ...]]:
        """Check everything, then get the artifacts (a build takes a while), then deploy every region.

        Returns the topics each region's queue is subscribed to.
        """
        own = {region: topic_arn(identity, region, self._config.cluster) for region in self._regions}
        wanted = (*own.values(), *self._config.peer_topic_arns)
        check_plan(self._config, self._regions, wanted, self._template)
        for arn in self._config.peer_topic_arns:
            if not self._topic_exists(arn):
                raise DeployError(f"peer topic {arn} does not exist yet: deploy the peer account first")
        built = artifacts()
        subscribed: dict[str, tuple[str, ...]] = {}
        # Pass 1, topics first: each stack subscribes to the topics that exist so far (its own included).
        for region in self._regions:
            existing = [arn for arn in wanted if arn == own[region] or self._topic_exists(arn)]
            subscribed[region] = self._deploy_region(region, own[region], existing, built)
        # Pass 2: the regions deployed before a newer region's topic existed subscribe to it now.
        for region in self._regions:
            if set(subscribed[region]) != set(wanted):
                subscribed[region] = self._deploy_region(region, own[region], wanted, built)
        return subscribed

    def _deploy_region(
        self, region: str, own: str, wanted: Sequence[str], artifacts: Path
    ) -> tuple[str, ...]:
        cfn = self._session.client("cloudformation", region_name=region)
        name = stack_name(self._config.cluster)
        # A stack still in review was never created, so it has no subscriptions yet.
        deployed = ""
        if stack_status(cfn, name) not in (None, "REVIEW_IN_PROGRESS"):
            deployed = stack_parameter(cfn, name, "TopicArns") or ""
        deployed_topics = [arn for arn in deployed.split(",") if arn]
        steps = subscription_steps(deployed_topics, topic_order(own, deployed_topics, wanted))
        for topics in steps:
            outcome = deploy_stack(
                cfn,
                name,
                TemplateUrl(TemplateURL=self._template_url(region, topics, artifacts)),
                self._config.parameters(region, topics),
                {"sgmesh:cluster": self._config.cluster},
            )
            self._log(f"{region}: stack {name} {outcome}, subscribed to {len(topics)} topic(s)")
        return steps[-1]

    def _template_url(self, region: str, topics: tuple[str, ...], artifacts: Path) -> str:
        key = (region, topics)
        if key not in self._template_urls:
            bucket, code_uri, layer_uri = self._region_artifacts(region, artifacts)
            body = json.dumps(transform(self._template, region, code_uri, layer_uri), sort_keys=True).encode()
            object_key = self._upload(region, bucket, body, "json")
            self._template_urls[key] = f"https://{bucket}.s3.{region}.amazonaws.com/{object_key}"
        return self._template_urls[key]

    def _region_artifacts(self, region: str, artifacts: Path) -> tuple[str, str, str]:
        """The region's artifact bucket (its own stack) with the code and layer uploaded to it."""
        if region not in self._uris:
            cfn = self._session.client("cloudformation", region_name=region)
            body = TemplateBody(TemplateBody=ARTIFACTS_TEMPLATE.read_text())
            outcome = deploy_stack(cfn, ARTIFACTS_STACK, body, {}, {"sgmesh": "artifacts"})
            self._log(f"{region}: stack {ARTIFACTS_STACK} {outcome}")
            bucket = stack_outputs(cfn, ARTIFACTS_STACK)["BucketName"]
            code = self._upload(region, bucket, (artifacts / CODE_ZIP).read_bytes(), "zip")
            layer = self._upload(region, bucket, (artifacts / LAYER_ZIP).read_bytes(), "zip")
            self._uris[region] = (bucket, f"s3://{bucket}/{code}", f"s3://{bucket}/{layer}")
        return self._uris[region]

    def _upload(self, region: str, bucket: str, body: bytes, suffix: str) -> str:
        """Content-addressed, so an unchanged artifact keeps its key and its stack stays unchanged."""
        key = f"{KEY_PREFIX}{hashlib.sha256(body).hexdigest()}.{suffix}"
        s3: S3Client = self._session.client("s3", region_name=region)
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        return key

    def _topic_exists(self, arn: str) -> bool:
        sns = self._session.client("sns", region_name=_region_of(arn))
        try:
            sns.get_topic_attributes(TopicArn=arn)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NotFound", "NotFoundException"):
                return False
            if code in ("AuthorizationError", "AuthorizationErrorException"):
                raise DeployError(
                    f"no access to topic {arn}: its account must deploy with this account in peer_accounts"
                ) from None
            raise
        return True


def _region_of(arn: str) -> str:
    return arn.split(":")[3]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the deploy file (TOML)")
    parser.add_argument("--regions", required=True, help="comma-separated regions of the cluster, in order")
    parser.add_argument(
        "--artifacts", type=Path, help="use these built artifacts (code.zip, layer.zip) instead of building"
    )
    args = parser.parse_args(argv)
    regions = [region.strip() for region in args.regions.split(",") if region.strip()]
    try:
        if not regions:
            raise DeployError("--regions names no region")
        config = ClusterConfig.load(args.config)
        session = boto3.session.Session()
        identity = caller_identity(session, regions[0])
        print(f"deploying sgmesh cluster {config.cluster} to {', '.join(regions)} as {identity.arn}")
        deployment = Deployment(config, regions, session, print)
        subscribed = deployment.run(identity, lambda: args.artifacts or _build(DEFAULT_OUT))
    except DeployError as error:
        print(f"sgmesh deploy: {error}", file=sys.stderr)
        return 2
    for region, topics in subscribed.items():
        print(f"{region}: queue subscribed to {', '.join(topics)}")
    return 0


def _build(out: Path) -> Path:
    try:
        print(build(out).report())
    except BuildError as error:
        raise DeployError(str(error)) from None
    return out


if __name__ == "__main__":
    sys.exit(main())
