"""The deploy plan against what only AWS enforces: DLQs before they are named, opt-in regions, the 4 KB
environment, prefix-list sizes the consumer owns. Each deploy here runs on moto; each refusal comes
before any AWS call (or before any change), counted on the deploy's own session."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.deploy.checks import environment_bytes, function_environments
from infra.deploy.config import ClusterConfig
from infra.deploy.deployment import Deployment
from infra.deploy.errors import DeployError
from infra.deploy.identity import Identity
from infra.deploy.names import topic_arn
from infra.deploy.plan import Step, first_pass
from infra.deploy.template import load_template
from schemas.names import stack_name
from tests.infra.stacks import ACCOUNT, DeployedStack

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
IDENTITY = Identity(account=ACCOUNT, partition="aws", arn=f"arn:aws:iam::{ACCOUNT}:role/deployer")
PEER = "222222222222"


def own(cluster: str, *regions: str) -> dict[str, str]:
    return {region: topic_arn(IDENTITY, region, cluster) for region in regions}


# ----------------------------------------------------------------------------- the first pass, pure


def test_a_first_deploy_subscribes_each_region_to_the_regions_deployed_before_it() -> None:
    topics = own("c", "r-a-1", "r-b-1", "r-c-1")
    a, b, c = topics.values()
    assert first_pass(topics, [], deployed=[]) == [
        Step("r-a-1", (a,)),
        Step("r-b-1", (b, a)),
        Step("r-c-1", (c, a, b)),
    ]
    assert first_pass(topics, [], deployed=list(topics)) == [
        Step("r-a-1", (a, b, c)),
        Step("r-b-1", (b, a, c)),
        Step("r-c-1", (c, a, b)),
    ]


def test_a_peer_topic_waits_for_this_accounts_stack_in_its_region() -> None:
    """GIVEN a peer account's topic in r-b-1, where this account's stack (hence the delivery DLQ its
    subscriptions name) does not exist yet, THEN no stack subscribes to it in the first pass: not r-a-1,
    deployed before r-b-1, nor r-b-1, whose DLQ its own step creates. The second pass does."""
    topics = own("c", "r-a-1", "r-b-1")
    a, b = topics.values()
    peer = f"arn:aws:sns:r-b-1:{PEER}:sgmesh-c"
    assert first_pass(topics, [peer], deployed=[]) == [Step("r-a-1", (a,)), Step("r-b-1", (b, a))]
    # Once this account's stack in r-b-1 exists, every region reaches it in the first pass.
    assert first_pass(topics, [peer], deployed=["r-b-1"]) == [
        Step("r-a-1", (a, b, peer)),
        Step("r-b-1", (b, a, peer)),
    ]


# ----------------------------------------------------------------------------- deploys on moto


@dataclass
class Recorder:
    """Every AWS call the deploy's session makes, and each stack deploy with the topics it names."""

    calls: list[str] = field(default_factory=list)
    stack_writes: list[dict[str, str]] = field(default_factory=list)
    unready_dead_letters: list[str] = field(default_factory=list)

    def attach(self, session: boto3.session.Session) -> None:
        session.events.register("before-parameter-build", self._call)

    def _call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(model.name)
        if model.name in ("CreateStack", "UpdateStack") and params["StackName"].startswith("sgmesh-x"):
            values = {p["ParameterKey"]: p["ParameterValue"] for p in params.get("Parameters", [])}
            self.stack_writes.append(values)
            self._check_dead_letters(params["StackName"], values)

    def _check_dead_letters(self, name: str, values: dict[str, str]) -> None:
        """Each subscription but the first names this account's delivery DLQ in its topic's region:
        that stack must exist when the subscription is created."""
        for topic in values["TopicArns"].split(",")[1:]:
            region = topic.split(":")[3]
            stacks = boto3.client("cloudformation", region_name=region).list_stacks()["StackSummaries"]
            if not any(s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE" for s in stacks):
                self.unready_dead_letters.append(f"{topic}: no {name} in {region} yet")


def deploy_file(directory: Path, cluster: str, regions: list[str], **keys: object) -> ClusterConfig:
    lines = [
        f'cluster = "{cluster}"',
        'auto_scaling_groups = ["g"]',
        *(f"{k} = {json.dumps(v)}" for k, v in keys.items()),
    ]
    if "ports" not in keys:
        lines.append('ports = "tcp:7000"')
    for region in regions:
        ec2 = boto3.client("ec2", region_name=region)
        vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        group = ec2.create_security_group(GroupName=f"{cluster}-{region}", Description="c", VpcId=vpc_id)
        lines += [f"[regions.{region}]", f'security_groups = ["{group["GroupId"]}"]']
    path = directory / "sgmesh.toml"
    path.write_text("\n".join(lines) + "\n")
    return ClusterConfig.load(path)


@pytest.fixture
def session(aws: str) -> tuple[boto3.session.Session, Recorder]:
    """A clean moto and the deploy's own session, recorded."""
    deploys = boto3.session.Session()
    recorder = Recorder()
    recorder.attach(deploys)
    return deploys, recorder


def peer_topic(region: str, cluster: str) -> str:
    """The peer account's topic, created as that account (moto takes the account from a header)."""
    peer = boto3.session.Session()
    peer.events.register(
        "before-sign", lambda request, **_: request.headers.__setitem__("x-moto-account-id", PEER)
    )
    arn: str = peer.client("sns", region_name=region).create_topic(Name=f"sgmesh-{cluster}")["TopicArn"]
    assert arn == f"arn:aws:sns:{region}:{PEER}:sgmesh-{cluster}"
    return arn


def test_a_cross_account_first_deploy_names_no_dead_letter_queue_before_it_exists(
    session: tuple[boto3.session.Session, Recorder], fake_artifacts: Path, tmp_path: Path
) -> None:
    """GIVEN a peer account's topic in us-west-2, WHEN this account deploys us-east-1 then us-west-2,
    THEN no stack is ever given a subscription whose delivery DLQ (this account's stack in the topic's
    region) does not exist yet, and both queues end subscribed to all three topics, each dead-lettering
    to this account's DLQ in the topic's region."""
    deploys, recorder = session
    regions = ["us-east-1", "us-west-2"]
    peer = peer_topic("us-west-2", "xacct")
    config = deploy_file(tmp_path, "xacct", regions, peer_accounts=[PEER], peer_topic_arns=[peer])

    subscribed = (
        Deployment(config, regions, deploys, lambda _line: None)
        .run(IDENTITY, lambda: fake_artifacts)
        .subscribed
    )

    assert recorder.unready_dead_letters == []
    wanted = {*own("xacct", *regions).values(), peer}
    assert {region: set(topics) for region, topics in subscribed.items()} == dict.fromkeys(regions, wanted)
    for region in regions:
        stack = DeployedStack(region, "xacct")
        for subscription in stack.resolved_of_type("AWS::SNS::Subscription").values():
            topic_region = subscription["TopicArn"].split(":")[3]
            dead_letters = DeployedStack(topic_region, "xacct").attribute("DeliveryDeadLetterQueue", "Arn")
            assert subscription["RedrivePolicy"] == {"deadLetterTargetArn": dead_letters}, region


def test_queues_and_keys_admit_the_regional_principal_of_opt_in_regions(
    session: tuple[boto3.session.Session, Recorder], fake_artifacts: Path, tmp_path: Path
) -> None:
    """GIVEN a mesh of us-east-1 and af-south-1 (an opt-in region), WHEN it is deployed, THEN both
    regions' queue policies, delivery DLQ policies and key admit sns.af-south-1.amazonaws.com besides
    sns.amazonaws.com: AWS's page requires it for deliveries from an opt-in region, and af-south-1's
    own queue receives from us-east-1 under it too."""
    deploys, _recorder = session
    regions = ["us-east-1", "af-south-1"]
    config = deploy_file(tmp_path, "xoptin", regions)

    Deployment(config, regions, deploys, lambda _line: None).run(IDENTITY, lambda: fake_artifacts)

    both = ["sns.amazonaws.com", "sns.af-south-1.amazonaws.com"]
    for region in regions:
        stack = DeployedStack(region, "xoptin")
        for policy_id in ("QueuePolicy", "DeliveryDeadLetterQueuePolicy"):
            policy = stack.resolved(policy_id)
            assert policy is not None
            (allow,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
            assert allow["Principal"] == {"Service": both}, (region, policy_id)
        key = stack.resolved("Key")
        assert key is not None
        (deliver,) = [s for s in key["KeyPolicy"]["Statement"] if s["Sid"] == "ClusterTopicsDeliver"]
        assert deliver["Principal"] == {"Service": both}, region


def refused_before_any_call(
    session: tuple[boto3.session.Session, Recorder],
    config: ClusterConfig,
    regions: list[str],
    artifacts: Path,
) -> str:
    deploys, recorder = session
    with pytest.raises(DeployError) as refused:
        Deployment(config, regions, deploys, lambda _line: None).run(IDENTITY, lambda: artifacts)
    assert recorder.calls == []
    return str(refused.value)


def test_a_mesh_of_two_opt_in_regions_is_refused_naming_them(
    session: tuple[boto3.session.Session, Recorder], fake_artifacts: Path, tmp_path: Path
) -> None:
    """SNS forwards nothing from one opt-in region to another (AWS's cross-region page): a mesh that
    needs it is refused before any AWS call, naming both directions."""
    regions = ["us-east-1", "af-south-1", "me-south-1"]
    config = deploy_file(tmp_path, "xoptin", regions)
    message = refused_before_any_call(session, config, regions, fake_artifacts)
    assert "the topic in af-south-1 cannot deliver to the queue in me-south-1" in message
    assert "the topic in me-south-1 cannot deliver to the queue in af-south-1" in message


def test_an_environment_over_lambdas_4_kb_is_refused_before_any_aws_call(
    session: tuple[boto3.session.Session, Recorder], fake_artifacts: Path, tmp_path: Path
) -> None:
    """Lambda refuses a function whose variables (names and values) exceed 4 KB, at CreateFunction, in
    the middle of a stack: the deploy says so first, naming the function and what fills it."""
    regions = ["us-east-1"]
    ports = ",".join(f"tcp:{port}" for port in range(10000, 10450))
    config = deploy_file(tmp_path, "xenv", regions, ports=ports)
    message = refused_before_any_call(session, config, regions, fake_artifacts)
    assert "us-east-1: ConsumerFunction's environment would be" in message
    assert f"over Lambda's 4096 (every variable's name and value): SGMESH_PORTS is {len(ports)}" in message


def test_the_environment_check_counts_at_least_what_the_functions_really_get(
    session: tuple[boto3.session.Session, Recorder], fake_artifacts: Path, tmp_path: Path
) -> None:
    """GIVEN a deployed region (prefix-list target, so every variable is set), THEN for each function
    the check's estimate, made before the stack existed, is at least the size of the environment Lambda
    was given: the generated names' stand-ins are never shorter than the real ones."""
    deploys, _recorder = session
    regions = ["us-east-1"]
    config = deploy_file(tmp_path, "xenv", regions, target="prefix-list", address="dual-stack")
    Deployment(config, regions, deploys, lambda _line: None).run(IDENTITY, lambda: fake_artifacts)
    stack = DeployedStack("us-east-1", "xenv")
    topics = stack.parameters["TopicArns"].split(",")
    estimated = function_environments(load_template(), config, config.settings("us-east-1", topics))
    lambda_client = boto3.client("lambda", region_name="us-east-1")
    for function, variables in estimated.items():
        given = lambda_client.get_function_configuration(FunctionName=stack.physical_ids[function])
        real = {name: str(value) for name, value in given["Environment"]["Variables"].items()}
        assert set(real) == set(variables), function
        assert environment_bytes(variables) >= environment_bytes(real), function


def test_a_changed_prefix_list_size_is_refused_before_any_change(
    session: tuple[boto3.session.Session, Recorder], fake_artifacts: Path, tmp_path: Path
) -> None:
    """GIVEN a region deployed with prefix lists of 20 entries (which the consumer has grown since),
    WHEN prefix_list_max_entries changes, THEN the deploy stops before any stack write, since the
    update would set the lists' size under the consumer; the unchanged file deploys as before."""
    deploys, recorder = session
    regions = ["us-east-1"]
    config = deploy_file(tmp_path, "xpl", regions, target="prefix-list", prefix_list_max_entries=20)
    Deployment(config, regions, deploys, lambda _line: None).run(IDENTITY, lambda: fake_artifacts)
    before = len(recorder.calls)

    changed = config.model_copy(update={"prefix_list_max_entries": 25})
    with pytest.raises(
        DeployError, match="prefix_list_max_entries = 25, but its prefix lists were created with 20"
    ):
        Deployment(changed, regions, deploys, lambda _line: None).run(IDENTITY, lambda: fake_artifacts)
    assert set(recorder.calls[before:]) == {"DescribeStacks"}

    lines: list[str] = []
    Deployment(config, regions, deploys, lines.append).run(IDENTITY, lambda: fake_artifacts)
    assert f"us-east-1: stack {stack_name('xpl')} unchanged, subscribed to 1 topic(s)" in lines
