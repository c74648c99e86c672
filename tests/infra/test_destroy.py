"""`make destroy` on three regions deployed into moto's CloudFormation: nothing without the cluster's
name; with it, the region retired everywhere, its stack and (last cluster) its artifact bucket gone,
and the doctor reporting the others' stale reference to its topic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from cloud.clients import ClientFactory
from cloud.sns_certificates import install_certificate_source
from consumers.bootstrap import build as build_consumer
from infra.deploy.config import ClusterConfig
from infra.deploy.deployment import Deployment
from infra.deploy.destroy import main
from infra.deploy.identity import caller_identity
from infra.deploy.meshfile import mesh_of
from schemas.names import ARTIFACTS_STACK, stack_name
from sgmesh.doctor import Doctor
from sgmesh.local.sns_certificates import install_local_certificates
from sgmesh.meshfile import MeshFile
from sgmesh.teardown import FUNCTIONS
from sgmesh.wiring import STALE, Part
from tests.infra.stacks import ACCOUNT, DeployedStack
from tests.infra.test_deploy_wiring import _group_and_security_group

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
CLUSTER = "leaving"
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
EUROPE = "eu-west-1"
STAYING = ("us-east-1", "us-west-2")


def stack_exists(region: str, name: str) -> bool:
    stacks = boto3.client("cloudformation", region_name=region).describe_stacks()["Stacks"]
    return any(stack["StackName"] == name and stack["StackStatus"] != "DELETE_COMPLETE" for stack in stacks)


def refuse_deleting_a_bucket_that_is_not_empty(session: boto3.session.Session) -> None:
    """AWS's rule, which moto's CloudFormation skips: a stack whose bucket holds any object version
    fails to delete. Emulated on DeleteStack of the artifacts stack."""

    def check(params: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
        if params.get("StackName") != ARTIFACTS_STACK:
            return
        region = context["client_region"]
        cfn = session.client("cloudformation", region_name=region)
        outputs = cfn.describe_stacks(StackName=ARTIFACTS_STACK)["Stacks"][0]["Outputs"]
        (bucket,) = [item["OutputValue"] for item in outputs if item["OutputKey"] == "BucketName"]
        listed = session.client("s3", region_name=region).list_object_versions(Bucket=bucket)
        if listed.get("Versions") or listed.get("DeleteMarkers"):
            raise ClientError(
                {"Error": {"Code": "BucketNotEmpty", "Message": f"{bucket} is not empty"}}, "DeleteStack"
            )

    session.events.register("before-parameter-build.cloudformation.DeleteStack", check)


def record_calls(session: boto3.session.Session) -> list[tuple[str, str, dict[str, Any]]]:
    """(region, operation, parameters) of every call made through `session`, in order."""
    calls: list[tuple[str, str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, context: dict[str, Any], **_kwargs: Any) -> None:
        calls.append((context["client_region"], model.name, params))

    session.events.register("before-parameter-build", record)
    return calls


@pytest.fixture
def deployed(moto_endpoint: str, fake_artifacts: Path, tmp_path: Path) -> Iterator[Path]:
    """GIVEN three regions deployed, with what moto's CloudFormation skipped applied as CloudFormation
    would, and the consumers trusting moto's SNS certificates; yields the deploy file."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    lines = [f'cluster = "{CLUSTER}"', 'ports = "tcp:9042"', 'auto_scaling_groups = ["db"]']
    for region in REGIONS:
        lines += [f"[regions.{region}]", f'security_groups = ["{_group_and_security_group(region)}"]']
    config_file = tmp_path / "sgmesh.toml"
    config_file.write_text("\n".join(lines) + "\n")
    session = boto3.session.Session()
    Deployment(ClusterConfig.load(config_file), REGIONS, session, lambda _line: None).run(
        caller_identity(session, REGIONS[0]), lambda: fake_artifacts
    )
    for region in REGIONS:
        stack = DeployedStack(region, CLUSTER)
        stack.apply_queue_policies()
        stack.apply_topic_policy_and_hooks()
    install_local_certificates(moto_endpoint)
    yield config_file
    install_certificate_source(None)


def consumers_of(mesh: MeshFile, regions: tuple[str, ...]) -> Any:
    """The staying regions' consumers, run in process (moto never runs a Lambda function): each look
    at the tables is preceded by them applying what their queues hold."""
    clients = ClientFactory(boto3.session.Session())

    def run() -> None:
        for region in regions:
            sqs = clients.sqs(region)
            url = mesh.region(region).queue_url or ""
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            consumer = build_consumer(mesh.settings(region), clients)
            consumer.apply([consumer.accept(m["Body"], m["MessageId"]) for m in messages])
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    return run


def test_without_the_clusters_name_it_prints_the_plan_and_changes_nothing(
    deployed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(deployed), "--regions", EUROPE, "--confirm", "other"]) == 2

    out, err = capsys.readouterr()
    assert f"{EUROPE} 1. stop sgmesh-{CLUSTER}-lifecycle" in out
    assert f"delete the stack sgmesh-{CLUSTER} in {EUROPE}" in out
    assert f"--confirm {CLUSTER} (given 'other')" in err
    assert stack_exists(EUROPE, stack_name(CLUSTER))


def test_make_destroy_retires_the_region_then_deletes_its_stack_and_artifacts(
    deployed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ClusterConfig.load(deployed)
    session = boto3.session.Session()
    refuse_deleting_a_bucket_that_is_not_empty(session)
    calls = record_calls(session)
    mesh = mesh_of(config, REGIONS, session)
    argv = ["--config", str(deployed), "--regions", EUROPE, "--confirm", CLUSTER]

    # WHEN eu-west-1 is destroyed
    assert main(argv, pause=consumers_of(mesh, STAYING), session=session) == 0

    # THEN every staying region applied its retirement before its stack went
    out = capsys.readouterr().out
    assert f"{EUROPE}: db retired at version" in out
    # ... its functions stopped first, so no true-up publishes its members again
    stopped = [
        f"{EUROPE}: sgmesh-{CLUSTER}-{name} stopped (its event sources and rules disabled)"
        for name in FUNCTIONS
    ]
    assert all(line in out for line in stopped), out
    assert out.index(stopped[-1]) < out.index(f"{EUROPE}: db retired")
    # ... by disabling what invokes them, in its own region, before the retirement went out
    stops = [
        (region, op, params)
        for region, op, params in calls
        if op in {"UpdateEventSourceMapping", "DisableRule"}
    ]
    assert {region for region, _op, _params in stops} == {EUROPE}
    assert all(params["Enabled"] is False for _r, op, params in stops if op == "UpdateEventSourceMapping")
    assert sum(op == "UpdateEventSourceMapping" for _r, op, _p in stops) == 2  # the queue's, the buffer's
    disabled = {params["Name"] for _r, op, params in stops if op == "DisableRule"}
    assert f"sgmesh-{CLUSTER}-lifecycle" in disabled
    assert len(disabled) == 2  # and the true-up's schedule
    operations = [op for _r, op, _p in calls]
    assert max(operations.index(op) for op in ("UpdateEventSourceMapping", "DisableRule")) < operations.index(
        "Publish"
    )
    assert f"{EUROPE}: every other region applied its retirement" in out
    retired = f"{ACCOUNT}/{EUROPE}/db"
    for region in STAYING:
        table = boto3.client("dynamodb", region_name=region)
        item = table.get_item(
            TableName=mesh.region(region).table,
            Key={"pk": {"S": f"state#{CLUSTER}"}, "sk": {"S": retired}},
        )
        assert '"retired"' in item["Item"]["snapshot"]["S"]
    # ... its stack is gone, and with the region's last cluster its artifact bucket, emptied first
    assert not stack_exists(EUROPE, stack_name(CLUSTER))
    assert not stack_exists(EUROPE, ARTIFACTS_STACK)
    assert f"{EUROPE}: artifact bucket" in out
    assert all(stack_exists(region, stack_name(CLUSTER)) for region in STAYING)
    assert f"next: make deploy REGIONS={','.join(STAYING)}" in out

    # ... the doctor reports the staying stacks' reference to its topic until they are deployed again
    diagnosis = Doctor(mesh_of(config, REGIONS, session), ClientFactory(session)).diagnose()
    topic = mesh.region(EUROPE).topic_arn
    assert sorted((f.region, f.part, f.subject, f.fix) for f in diagnosis.findings) == sorted(
        (region, part, topic, STALE)
        for region in STAYING
        for part in (Part.QUEUE_POLICY, Part.DEAD_LETTER_POLICY)
    )

    # ... and a second run finds nothing left to do
    assert main(argv, pause=consumers_of(mesh, STAYING), session=session) == 0
    assert f"{EUROPE}: no stack of {CLUSTER}: nothing to retire or revoke" in capsys.readouterr().out
