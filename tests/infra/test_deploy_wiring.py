"""`make deploy` ends with the doctor: a lost subscription is re-created while every stack is "unchanged"."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests

from infra.deploy.__main__ import main
from infra.deploy.config import ClusterConfig
from infra.deploy.deployment import Deployed, Deployment
from infra.deploy.identity import caller_identity
from sgmesh.meshfile import load
from tests.infra.stacks import ACCOUNT, DeployedStack

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
CLUSTER = "wired"
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")


def topic(region: str) -> str:
    return f"arn:aws:sns:{region}:{ACCOUNT}:sgmesh-{CLUSTER}"


@dataclass(frozen=True)
class Cluster:
    config: ClusterConfig
    config_file: Path
    artifacts: Path

    def deploy(self) -> tuple[Deployed, list[str]]:
        log: list[str] = []
        session = boto3.session.Session()
        deployed = Deployment(self.config, REGIONS, session, log.append).run(
            caller_identity(session, REGIONS[0]), lambda: self.artifacts
        )
        return deployed, log


@pytest.fixture(scope="module")
def cluster(moto_endpoint: str, fake_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """GIVEN three regions, each with its Auto Scaling group and security group, deployed, with what
    moto's CloudFormation skipped applied as CloudFormation would, except the subscriptions (the
    deploy's own pass makes sure of those)."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    lines = [f'cluster = "{CLUSTER}"', 'ports = "tcp:9042"', 'auto_scaling_groups = ["db"]']
    for region in REGIONS:
        lines += [f"[regions.{region}]", f'security_groups = ["{_group_and_security_group(region)}"]']
    config_file = tmp_path_factory.mktemp("wired") / "sgmesh.toml"
    config_file.write_text("\n".join(lines) + "\n")
    cluster = Cluster(ClusterConfig.load(config_file), config_file, fake_artifacts)
    cluster.deploy()
    for region in REGIONS:
        stack = DeployedStack(region, CLUSTER)
        stack.apply_queue_policies()
        stack.apply_topic_policy_and_hooks()
    return cluster


def _group_and_security_group(region: str) -> str:
    ec2 = boto3.client("ec2", region_name=region)
    subnet = ec2.describe_subnets()["Subnets"][0]
    ec2.create_launch_template(
        LaunchTemplateName="db-template", LaunchTemplateData={"InstanceType": "t3.micro"}
    )
    boto3.client("autoscaling", region_name=region).create_auto_scaling_group(
        AutoScalingGroupName="db",
        LaunchTemplate={"LaunchTemplateName": "db-template"},
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        VPCZoneIdentifier=subnet["SubnetId"],
    )
    group_id: str = ec2.create_security_group(GroupName="db", Description="db", VpcId=subnet["VpcId"])[
        "GroupId"
    ]
    return group_id


def test_a_deploy_ends_with_a_healthy_verdict_and_the_clusters_mesh_file(cluster: Cluster) -> None:
    deployed, log = cluster.deploy()

    assert [line for line in log if "sgmesh-wired " in line] == [
        f"{region}: stack sgmesh-wired unchanged, subscribed to 3 topic(s)" for region in REGIONS
    ]
    assert deployed.wiring.healthy, deployed.wiring.lines()
    assert deployed.wiring.verdict() == f"wiring healthy in {', '.join(REGIONS)}"
    # The mesh file names each stack's outputs, as the operator's does
    for region, entry in deployed.mesh.regions.items():
        outputs = DeployedStack(region, CLUSTER)
        assert entry.topic_arn == topic(region)
        assert entry.queue_url == outputs.physical_ids["Queue"]
        assert entry.lifecycle_buffer_url == outputs.physical_ids["LifecycleBuffer"]
        assert entry.table == outputs.physical_ids["Table"]


def test_a_topic_recreated_outside_the_deploy_is_subscribed_again_by_the_next_deploy(
    cluster: Cluster,
) -> None:
    # GIVEN us-west-2's topic deleted and created again: SNS dropped every queue's subscription to it,
    # and no stack parameter changed
    sns = boto3.client("sns", region_name="us-west-2")
    sns.delete_topic(TopicArn=topic("us-west-2"))
    sns.create_topic(Name=f"sgmesh-{CLUSTER}")
    sns.set_topic_attributes(
        TopicArn=topic("us-west-2"),
        AttributeName="Policy",
        AttributeValue=json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                        "Action": "sns:Subscribe",
                        "Resource": topic("us-west-2"),
                    }
                ]
            }
        ),
    )

    # WHEN the same deploy runs again
    deployed, log = cluster.deploy()

    # THEN every stack is unchanged, but each queue is subscribed to that topic again, with the
    # template's attributes, and the verdict is healthy
    assert [line for line in log if "stack sgmesh-wired" in line] == [
        f"{region}: stack sgmesh-wired unchanged, subscribed to 3 topic(s)" for region in REGIONS
    ]
    assert [line for line in log if "subscribed again" in line] == [
        f"{region}: queue subscribed again to {topic('us-west-2')} "
        "(it was missing: this region receives nothing from the topic)"
        for region in REGIONS
    ]
    assert deployed.wiring.healthy, deployed.wiring.lines()
    listed = sns.list_subscriptions_by_topic(TopicArn=topic("us-west-2"))["Subscriptions"]
    for subscription in listed:
        attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])[
            "Attributes"
        ]
        assert attributes["RawMessageDelivery"] == "false"
        dead_letters = DeployedStack("us-west-2", CLUSTER).attribute("DeliveryDeadLetterQueue", "Arn")
        assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dead_letters}
    assert sorted(s["Endpoint"] for s in listed) == sorted(
        DeployedStack(region, CLUSTER).attribute("Queue", "Arn") for region in REGIONS
    )


def test_make_deploy_prints_the_verdict_and_exits_1_on_what_it_cannot_repair(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = [
        "--config",
        str(cluster.config_file),
        "--regions",
        ",".join(REGIONS),
        "--artifacts",
        str(cluster.artifacts),
    ]

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"wiring healthy in {', '.join(REGIONS)}")
    mesh = load(tmp_path / "sgmesh.mesh.toml")
    assert set(mesh.regions) == set(REGIONS)

    # GIVEN eu-west-1's queue policy removed by hand: only a deploy that updates the stack restores it
    queue_url = DeployedStack("eu-west-1", CLUSTER).physical_ids["Queue"]
    boto3.client("sqs", region_name="eu-west-1").set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": ""}
    )
    try:
        assert main(argv) == 1
        out = capsys.readouterr().out
        assert "eu-west-1: queue policy: missing: SNS may deliver to it from no topic (make deploy" in out
        assert out.rstrip().endswith(f"wiring broken: 1 problem(s) in {', '.join(REGIONS)}")
    finally:
        DeployedStack("eu-west-1", CLUSTER).apply_queue_policies()
