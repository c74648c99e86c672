"""The deploy script against moto: three regions, the same again, then a fourth; the wiring moto skips."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from cloud.clients import ClientFactory
from infra.deploy.config import ClusterConfig
from infra.deploy.deployment import Deployment
from infra.deploy.identity import caller_identity
from infra.deploy.meshfile import mesh_of, write_mesh_file
from schemas.names import stack_name
from sgmesh.meshfile import load
from sgmesh.operator import Operator
from tests.infra.stacks import ACCOUNT, DeployedStack
from tests.support.mesh import SNAPSHOT_ATTRIBUTES

CLUSTER = "demo"
THREE = ("us-east-1", "us-west-2", "eu-west-1")
FOUR = (*THREE, "ap-southeast-2")
GROUPS = ("cassandra-a", "cassandra-b")
LOG_LINE = re.compile(
    r"^(?P<region>[a-z0-9-]+): stack (?P<stack>\S+) (?P<outcome>\w+)(, subscribed to (?P<topics>\d+))?"
)
RESUBSCRIBED = re.compile(
    r"^(?P<region>[a-z0-9-]+): queue subscribed again to (?P<topic>\S+) \(it was missing"
)
# What moto 5.2's CloudFormation skips: the tests below resolve these from the deployed template.
# moto says so for each of them, as a warning and a log line; both are expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
SKIPPED_BY_MOTO = {
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::AutoScaling::LifecycleHook",
    "AWS::CloudWatch::Alarm",
    "AWS::Lambda::EventInvokeConfig",
}


def topic(region: str) -> str:
    return f"arn:aws:sns:{region}:{ACCOUNT}:sgmesh-{CLUSTER}"


@dataclass(frozen=True)
class Run:
    lines: tuple[tuple[str, str, str, int | None], ...]
    subscribed: dict[str, tuple[str, ...]]
    topic_parameters: dict[str, str]
    # (region, topic) of each subscription the deploy's own pass created, after the stacks
    resubscribed: tuple[tuple[str, str], ...]

    def stack_lines(self, stack: str) -> list[tuple[str, str, int | None]]:
        return [(region, outcome, topics) for region, name, outcome, topics in self.lines if name == stack]


@dataclass(frozen=True)
class Deployed:
    runs: tuple[Run, Run, Run]
    security_groups: dict[str, str]
    config: ClusterConfig


@pytest.fixture(scope="module")
def deployed(moto_endpoint: str, fake_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """GIVEN four regions with a security group each, WHEN the deploy runs for three regions, again
    for the same three, then for all four, THEN each run is recorded here."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    security_groups = {region: _security_group(region) for region in FOUR}
    config_file = tmp_path_factory.mktemp("deploy") / "sgmesh.toml"
    config_file.write_text(_config_text(security_groups))
    config = ClusterConfig.load(config_file)
    session = boto3.session.Session()
    identity = caller_identity(session, THREE[0])
    runs = []
    for regions in (THREE, THREE, FOUR):
        log: list[str] = []
        deployed = Deployment(config, regions, session, log.append).run(identity, lambda: fake_artifacts)
        resubscribed = [match for line in log if (match := RESUBSCRIBED.match(line))]
        runs.append(
            Run(
                lines=tuple(_parse(line) for line in log if not RESUBSCRIBED.match(line)),
                subscribed=deployed.subscribed,
                topic_parameters={r: DeployedStack(r, CLUSTER).parameters["TopicArns"] for r in regions},
                resubscribed=tuple((match["region"], match["topic"]) for match in resubscribed),
            )
        )
    return Deployed(runs=(runs[0], runs[1], runs[2]), security_groups=security_groups, config=config)


def _security_group(region: str) -> str:
    ec2 = boto3.client("ec2", region_name=region)
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    group_id: str = ec2.create_security_group(GroupName="cluster", Description="cluster", VpcId=vpc_id)[
        "GroupId"
    ]
    return group_id


def _config_text(security_groups: dict[str, str]) -> str:
    lines = [
        f'cluster = "{CLUSTER}"',
        'ports = "tcp:7000-7001,tcp:9042"',
        f"auto_scaling_groups = {json.dumps(list(GROUPS))}",
        "lifecycle_heartbeat_timeout = 300",
    ]
    for region, group_id in security_groups.items():
        lines += [f"[regions.{region}]", f'security_groups = ["{group_id}"]']
    return "\n".join(lines) + "\n"


def _parse(line: str) -> tuple[str, str, str, int | None]:
    match = LOG_LINE.match(line)
    assert match, line
    topics = match["topics"]
    return match["region"], match["stack"], match["outcome"], int(topics) if topics else None


# ----------------------------------------------------------------------------- ordering and idempotency


def test_first_deploy_creates_every_topic_before_subscribing_to_it(deployed: Deployed) -> None:
    first = deployed.runs[0].stack_lines(stack_name(CLUSTER))
    # Pass 1 in order: each new stack subscribes to the topics that exist so far, its own included.
    assert first[:3] == [
        ("us-east-1", "created", 1),
        ("us-west-2", "created", 2),
        ("eu-west-1", "created", 3),
    ]
    # Pass 2: the regions deployed before the later topics existed subscribe to them now.
    assert first[3:] == [("us-east-1", "updated", 3), ("us-west-2", "updated", 3)]
    assert deployed.runs[0].topic_parameters == {
        "us-east-1": ",".join(topic(r) for r in ("us-east-1", "us-west-2", "eu-west-1")),
        "us-west-2": ",".join(topic(r) for r in ("us-west-2", "us-east-1", "eu-west-1")),
        "eu-west-1": ",".join(topic(r) for r in ("eu-west-1", "us-east-1", "us-west-2")),
    }


def test_the_deploys_own_pass_subscribes_what_cloudformation_did_not(deployed: Deployed) -> None:
    """moto's CloudFormation skips AWS::SNS::Subscription, as AWS's own may lose one (a topic created
    again drops its subscriptions): the deploy's own pass subscribes every queue the stacks left out,
    once, and nothing when all are there."""
    first, again, fourth = deployed.runs
    assert sorted(first.resubscribed) == sorted((q, topic(t)) for q in THREE for t in THREE)
    assert again.resubscribed == ()
    assert sorted(fourth.resubscribed) == sorted(
        {(q, topic(t)) for q in FOUR for t in FOUR} - {(q, topic(t)) for q in THREE for t in THREE}
    )


def test_the_same_deploy_again_changes_no_cluster_stack(deployed: Deployed) -> None:
    # moto updates a stack without parameters (sgmesh-artifacts) even when nothing changed, so only
    # the cluster's stacks can show CloudFormation's "no updates" here.
    again = deployed.runs[1].stack_lines(stack_name(CLUSTER))
    assert again == [(region, "unchanged", 3) for region in THREE]
    assert deployed.runs[1].topic_parameters == deployed.runs[0].topic_parameters


def test_adding_a_region_is_the_same_command_with_one_more_region(deployed: Deployed) -> None:
    fourth = deployed.runs[2].stack_lines(stack_name(CLUSTER))
    assert fourth == [
        ("us-east-1", "unchanged", 3),
        ("us-west-2", "unchanged", 3),
        ("eu-west-1", "unchanged", 3),
        ("ap-southeast-2", "created", 4),
        ("us-east-1", "updated", 4),
        ("us-west-2", "updated", 4),
        ("eu-west-1", "updated", 4),
    ]
    # Earlier topics keep their subscription slots; the new one is appended.
    for region in THREE:
        before = deployed.runs[1].topic_parameters[region].split(",")
        assert deployed.runs[2].topic_parameters[region].split(",") == [*before, topic("ap-southeast-2")]
    assert {region: set(topics) for region, topics in deployed.runs[2].subscribed.items()} == {
        region: {topic(r) for r in FOUR} for region in FOUR
    }


# ----------------------------------------------------------------------------- what moto built


def test_moto_builds_everything_but_the_resources_resolved_below(deployed: Deployed) -> None:
    for region in FOUR:
        assert set(DeployedStack(region, CLUSTER).skipped().values()) == SKIPPED_BY_MOTO, region


def test_functions_run_the_template_settings(deployed: Deployed) -> None:
    stack = DeployedStack("eu-west-1", CLUSTER)
    lambda_client = boto3.client("lambda", region_name="eu-west-1")
    # moto passes numbers through as numbers; Lambda's environment holds strings.
    consumer = lambda_client.get_function_configuration(FunctionName=stack.physical_ids["ConsumerFunction"])
    # The admission barrier: both sides know the region's lifecycle buffer and the timeout.
    barrier = {
        "SGMESH_ADMISSION_TIMEOUT_SECONDS": "120",
        "SGMESH_ADMISSION_TIMEOUT_RESULT": "CONTINUE",
        "SGMESH_ADMISSION_QUEUE_URL": stack.physical_ids["LifecycleBuffer"],
    }
    assert {name: str(value) for name, value in consumer["Environment"]["Variables"].items()} == {
        "SGMESH_CLUSTER": CLUSTER,
        "SGMESH_TABLE_NAME": stack.physical_ids["Table"],
        "SGMESH_ADDRESS": "public",
        "SGMESH_TOPIC_ARN": topic("eu-west-1"),
        "SGMESH_SECURITY_GROUP_IDS": deployed.security_groups["eu-west-1"],
        "SGMESH_PORTS": "tcp:7000-7001,tcp:9042",
        "SGMESH_PEER_TOPIC_ARNS": stack.parameters["TopicArns"],
        "SGMESH_RULE_QUOTA": "60",
        "SGMESH_EVENT_RETENTION_DAYS": "30",
        "SGMESH_MAX_EVENT_AGE_SECONDS": "21600",
        "SGMESH_TARGET": "security-group",
        "SGMESH_OBSERVE": "false",
        # Prefix lists only with the prefix-list target (test_contract resolves that case).
        "SGMESH_PREFIX_LIST_IDS": "",
        **barrier,
    }
    producer = lambda_client.get_function_configuration(FunctionName=stack.physical_ids["LifecycleFunction"])
    assert {name: str(value) for name, value in producer["Environment"]["Variables"].items()} == {
        "SGMESH_CLUSTER": CLUSTER,
        "SGMESH_TABLE_NAME": stack.physical_ids["Table"],
        "SGMESH_ADDRESS": "public",
        "SGMESH_TOPIC_ARN": topic("eu-west-1"),
        "SGMESH_ASG_NAMES": ",".join(GROUPS),
        # The regions its launches wait for.
        "SGMESH_PEER_TOPIC_ARNS": stack.parameters["TopicArns"],
        **barrier,
    }


def test_queues_keep_messages_as_the_design_requires(deployed: Deployed) -> None:
    stack = DeployedStack("us-west-2", CLUSTER)
    sqs = boto3.client("sqs", region_name="us-west-2")

    def attributes(logical_id: str) -> dict[str, str]:
        url = stack.physical_ids[logical_id]
        found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return {str(name): value for name, value in found.items()}

    lambda_client = boto3.client("lambda", region_name="us-west-2")
    # The snapshot queue feeds the consumer; the lifecycle buffer feeds the lifecycle function.
    for queue_id, dead_letters_id, function_id in (
        ("Queue", "DeadLetterQueue", "ConsumerFunction"),
        ("LifecycleBuffer", "LifecycleBufferDeadLetterQueue", "LifecycleFunction"),
    ):
        queue, dead_letters = attributes(queue_id), attributes(dead_letters_id)
        redrive = json.loads(queue["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == dead_letters["QueueArn"], queue_id
        assert int(redrive["maxReceiveCount"]) >= 5, queue_id
        assert int(dead_letters["MessageRetentionPeriod"]) > int(queue["MessageRetentionPeriod"]), queue_id
        function = lambda_client.get_function_configuration(FunctionName=stack.physical_ids[function_id])
        assert int(queue["VisibilityTimeout"]) >= 6 * function["Timeout"], queue_id
    for logical_id in (
        "Queue",
        "DeadLetterQueue",
        "DeliveryDeadLetterQueue",
        "ProducerDeadLetterQueue",
        "LifecycleBuffer",
        "LifecycleBufferDeadLetterQueue",
    ):
        assert attributes(logical_id)["KmsMasterKeyId"] == stack.physical_ids["Key"], logical_id


def test_topic_is_named_for_the_cluster_and_signs_with_sha256(deployed: Deployed) -> None:
    for region in FOUR:
        stack = DeployedStack(region, CLUSTER)
        assert stack.physical_ids["Topic"] == topic(region)
        attributes = boto3.client("sns", region_name=region).get_topic_attributes(TopicArn=topic(region))
        assert attributes["Attributes"]["KmsMasterKeyId"] == stack.physical_ids["Key"]
        # moto keeps no SignatureVersion of a topic it builds from a template: read the template.
        assert stack.resolved("Topic") == {
            "TopicName": f"sgmesh-{CLUSTER}",
            "KmsMasterKeyId": stack.physical_ids["Key"],
            "SignatureVersion": "2",
        }


def test_roles_write_only_the_managed_groups_and_complete_only_the_named_groups(deployed: Deployed) -> None:
    # moto keeps a role's inline policy from a template as a Python repr: read the resolved template.
    stack = DeployedStack("us-east-1", CLUSTER)

    def statements(role_logical_id: str) -> dict[str, Any]:
        role = stack.resolved(role_logical_id)
        assert role is not None
        (policy,) = role["Policies"]
        return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}

    consumer = statements("ConsumerRole")
    # The group ARNs scope every write; rule ARNs cannot name a group, so they are region-wide.
    assert consumer["WriteManagedGroupsOnly"]["Resource"] == [
        f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/{deployed.security_groups['us-east-1']}",
        f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group-rule/*",
    ]
    lifecycle = statements("LifecycleRole")
    assert lifecycle["CompleteOwnGroupsActions"]["Resource"] == [
        f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/{name}"
        for name in GROUPS
    ]
    assert "CompleteOwnGroupsActions" not in statements("TrueupRole")


def test_names_in_policies_match_what_was_really_created(deployed: Deployed) -> None:
    """The key, and the roles' log permissions, admit by name what is created after them (a reference
    would be a dependency cycle): those names must be the real ones."""
    stack = DeployedStack("us-east-1", CLUSTER)
    key = stack.resolved("Key")
    assert key is not None
    statements = {statement["Sid"]: statement for statement in key["KeyPolicy"]["Statement"]}
    logs = statements["FunctionLogs"]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    for function in ("Lifecycle", "Trueup", "Consumer"):
        log_group = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{stack.physical_ids[f'{function}LogGroup']}"
        assert fnmatch.fnmatchcase(log_group, logs), function
        role = stack.resolved(f"{function}Role")
        assert role is not None
        (own_logs,) = [s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if s["Sid"] == "OwnLogs"]
        assert fnmatch.fnmatchcase(f"{log_group}:log-stream:2026/01/01/[$LATEST]0", own_logs["Resource"])
    topics = statements["ClusterTopicsDeliver"]["Condition"]
    assert all(fnmatch.fnmatchcase(topic(region), topics["ArnLike"]["aws:SourceArn"]) for region in FOUR)
    assert topics["StringEquals"]["aws:SourceAccount"] == [ACCOUNT]


# ----------------------------------------------------------------------------- what moto skipped


def test_every_queue_subscribes_to_every_topic_with_envelopes_and_a_dead_letter_queue(
    deployed: Deployed,
) -> None:
    for region in FOUR:
        stack = DeployedStack(region, CLUSTER)
        subscriptions = stack.resolved_of_type("AWS::SNS::Subscription")
        queue_arn = stack.attribute("Queue", "Arn")
        assert sorted(s["TopicArn"] for s in subscriptions.values()) == sorted(topic(r) for r in FOUR)
        for subscription in subscriptions.values():
            topic_region = subscription["TopicArn"].split(":")[3]
            assert subscription["Protocol"] == "sqs"
            assert subscription["Endpoint"] == queue_arn
            assert subscription["RawMessageDelivery"] is False
            assert subscription["Region"] == topic_region
            # SNS keeps a subscription's dead letters in the topic's region: that region's stack has it.
            dead_letters = DeployedStack(topic_region, CLUSTER).attribute("DeliveryDeadLetterQueue", "Arn")
            assert subscription["RedrivePolicy"] == {"deadLetterTargetArn": dead_letters}


def test_queue_policies_admit_exactly_the_cluster_topics(deployed: Deployed) -> None:
    for region in FOUR:
        stack = DeployedStack(region, CLUSTER)
        policies = stack.resolved_of_type("AWS::SQS::QueuePolicy")
        for logical_id, queue in (
            ("QueuePolicy", "Queue"),
            ("DeliveryDeadLetterQueuePolicy", "DeliveryDeadLetterQueue"),
        ):
            policy = policies[logical_id]
            assert policy["Queues"] == [stack.physical_ids[queue]]
            (allow,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
            assert allow["Principal"] == {"Service": ["sns.amazonaws.com"]}
            assert allow["Action"] == "sqs:SendMessage"
            assert allow["Resource"] == stack.attribute(queue, "Arn")
            assert sorted(allow["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(topic(r) for r in FOUR)
        producer_dlq = policies["ProducerDeadLetterQueuePolicy"]["PolicyDocument"]["Statement"][0]
        assert producer_dlq["Principal"] == {"Service": "events.amazonaws.com"}
        assert sorted(producer_dlq["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(
            stack.attribute(rule, "Arn") for rule in ("LifecycleRule", "TrueupFunctionSchedule")
        )
        # Only the lifecycle rule may write to the lifecycle buffer.
        buffer_policy = policies["LifecycleBufferPolicy"]
        assert buffer_policy["Queues"] == [stack.physical_ids["LifecycleBuffer"]]
        (allow,) = [s for s in buffer_policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        assert allow["Principal"] == {"Service": "events.amazonaws.com"}
        assert allow["Action"] == "sqs:SendMessage"
        assert allow["Resource"] == stack.attribute("LifecycleBuffer", "Arn")
        assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": stack.attribute("LifecycleRule", "Arn")}}


def test_the_resolved_wiring_carries_every_topic_to_every_queue(deployed: Deployed) -> None:
    """GIVEN the subscriptions and queue policies resolved from each deployed template, applied through
    the SNS and SQS APIs (what CloudFormation would do), WHEN each region's topic publishes a snapshot,
    THEN every region's queue receives every one, in an envelope naming its topic; WHEN each publishes
    an acknowledgement of a us-east-1 source, THEN only us-east-1's queue receives them (the filter)."""
    stacks = [DeployedStack(region, CLUSTER) for region in FOUR]
    for stack in stacks:
        stack.apply_wiring()
    acknowledgement: dict[str, Any] = {
        "type": {"DataType": "String", "StringValue": "sgmesh.acknowledgement"},
        "source_regions": {"DataType": "String.Array", "StringValue": json.dumps(["us-east-1"])},
    }
    routed: tuple[tuple[str, dict[str, Any]], ...] = (
        ("snapshot", SNAPSHOT_ATTRIBUTES),
        ("acknowledgement", acknowledgement),
    )
    for kind, attributes in routed:
        for region in FOUR:
            boto3.client("sns", region_name=region).publish(
                TopicArn=topic(region), Message=f"{kind} from {region}", MessageAttributes=attributes
            )
        for stack in stacks:
            admitted = kind == "snapshot" or stack.region == "us-east-1"
            expected = {(topic(region), f"{kind} from {region}") for region in FOUR} if admitted else set()
            assert _drain(stack) == expected, (kind, stack.region)


def _drain(stack: DeployedStack) -> set[tuple[str, str]]:
    """(topic, message) of every envelope on the stack's queue, taken off it."""
    sqs = boto3.client("sqs", region_name=stack.region)
    received: set[tuple[str, str]] = set()
    while messages := sqs.receive_message(QueueUrl=stack.physical_ids["Queue"], MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            envelope = json.loads(message["Body"])
            received.add((envelope["TopicArn"], envelope["Message"]))
            sqs.delete_message(QueueUrl=stack.physical_ids["Queue"], ReceiptHandle=message["ReceiptHandle"])
    return received


def test_lifecycle_hooks_on_every_named_group_with_the_parameters(deployed: Deployed) -> None:
    stack = DeployedStack("us-west-2", CLUSTER)
    hooks = stack.resolved_of_type("AWS::AutoScaling::LifecycleHook").values()
    assert sorted(
        (h["AutoScalingGroupName"], h["LifecycleTransition"], h["LifecycleHookName"]) for h in hooks
    ) == sorted(
        (group, f"autoscaling:EC2_INSTANCE_{kind.upper()}", f"sgmesh-{CLUSTER}-{kind.lower()}")
        for group in GROUPS
        for kind in ("Launching", "Terminating")
    )
    assert {(h["HeartbeatTimeout"], h["DefaultResult"]) for h in hooks} == {("300", "CONTINUE")}
    events = boto3.client("events", region_name="us-west-2")
    rule = events.describe_rule(Name=stack.physical_ids["LifecycleRule"])
    pattern = json.loads(rule["EventPattern"])
    assert pattern["detail"] == {
        "AutoScalingGroupName": list(GROUPS),
        "LifecycleHookName": [f"sgmesh-{CLUSTER}-launching", f"sgmesh-{CLUSTER}-terminating"],
    }


def test_lifecycle_events_reach_the_function_through_the_buffer_in_batches(deployed: Deployed) -> None:
    stack = DeployedStack("us-west-2", CLUSTER)
    buffer = stack.attribute("LifecycleBuffer", "Arn")
    # The rule's only target is the buffer (not the function), with the producers' DLQ for what
    # EventBridge cannot deliver.
    (target,) = boto3.client("events", region_name="us-west-2").list_targets_by_rule(
        Rule=stack.physical_ids["LifecycleRule"]
    )["Targets"]
    assert target["Arn"] == buffer
    assert target["DeadLetterConfig"] == {"Arn": stack.attribute("ProducerDeadLetterQueue", "Arn")}
    # The function reads the buffer in batches of up to 10, reporting failed records one by one.
    mapping = stack.resolved("LifecycleFunctionLifecycleActions")
    assert mapping is not None
    assert mapping["EventSourceArn"] == buffer
    assert mapping["FunctionName"] == stack.physical_ids["LifecycleFunction"]
    assert (mapping["BatchSize"], mapping["FunctionResponseTypes"]) == (10, ["ReportBatchItemFailures"])


def test_alarms_watch_the_stack_own_queues_function_and_quota_metric(deployed: Deployed) -> None:
    stack = DeployedStack("eu-west-1", CLUSTER)
    alarms = stack.resolved_of_type("AWS::CloudWatch::Alarm")
    watched = {
        logical_id: (
            alarm["Namespace"],
            alarm["MetricName"],
            [d["Value"] for d in alarm.get("Dimensions", [])],
        )
        for logical_id, alarm in alarms.items()
    }
    queue_name = {
        q: stack.attribute(q, "QueueName")
        for q in (
            "DeadLetterQueue",
            "DeliveryDeadLetterQueue",
            "ProducerDeadLetterQueue",
            "LifecycleBufferDeadLetterQueue",
        )
    }
    # The consumer's own metrics (Powertools EMF): namespace sgmesh, dimensions service and cluster.
    consumer_metric = ["sgmesh-consumer", CLUSTER]
    assert watched == {
        "ConsumerDeadLettersAlarm": (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            [queue_name["DeadLetterQueue"]],
        ),
        "DeliveryDeadLettersAlarm": (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            [queue_name["DeliveryDeadLetterQueue"]],
        ),
        "ProducerDeadLettersAlarm": (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            [queue_name["ProducerDeadLetterQueue"]],
        ),
        "LifecycleBufferDeadLettersAlarm": (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            [queue_name["LifecycleBufferDeadLetterQueue"]],
        ),
        "ConsumerErrorsAlarm": ("AWS/Lambda", "Errors", [stack.physical_ids["ConsumerFunction"]]),
        "RuleQuotaAlarm": ("sgmesh", "RuleQuotaExceeded", consumer_metric),
        "RecordsRejectedAlarm": ("sgmesh", "RecordsRejected", consumer_metric),
        "SourceSilenceAlarm": ("sgmesh", "OldestSourceAgeSeconds", consumer_metric),
        "RuleHeadroomAlarm": ("sgmesh", "RuleHeadroom", consumer_metric),
    }
    # Three 15-minute true-up periods, and 10% of the 60-rule quota (the deploy file's defaults).
    assert (
        float(alarms["SourceSilenceAlarm"]["Threshold"]),
        float(alarms["RuleHeadroomAlarm"]["Threshold"]),
    ) == (2700, 6)
    assert [d["Name"] for d in alarms["RuleQuotaAlarm"]["Dimensions"]] == ["service", "cluster"]
    assert [d["Name"] for d in alarms["RecordsRejectedAlarm"]["Dimensions"]] == ["service", "cluster"]
    assert stack.resolved_of_type("AWS::Logs::MetricFilter") == {}
    # No alarm topic configured: the alarms notify nobody, and say so by having no actions at all.
    assert all("AlarmActions" not in alarm for alarm in alarms.values())


def test_asynchronous_producer_failures_land_in_the_producer_dead_letter_queue(deployed: Deployed) -> None:
    stack = DeployedStack("us-east-1", CLUSTER)
    configs = stack.resolved_of_type("AWS::Lambda::EventInvokeConfig")
    dead_letters = stack.attribute("ProducerDeadLetterQueue", "Arn")
    assert {
        c["FunctionName"]: c["DestinationConfig"]["OnFailure"]["Destination"] for c in configs.values()
    } == {
        stack.physical_ids["LifecycleFunction"]: dead_letters,
        stack.physical_ids["TrueupFunction"]: dead_letters,
    }
    (topic_policy,) = stack.resolved_of_type("AWS::SNS::TopicPolicy").values()
    assert topic_policy["Topics"] == [topic("us-east-1")]
    # No peer accounts configured: only the owner's statement and the TLS guard.
    assert [s["Sid"] for s in topic_policy["PolicyDocument"]["Statement"]] == ["OwnerOnly", "TlsOnly"]


def test_the_mesh_file_comes_from_the_stacks_outputs_and_the_cli_runs_on_it(
    deployed: Deployed, tmp_path: Path
) -> None:
    # GIVEN the four deployed regions, WHEN the deploy writes the operator's mesh file from their outputs
    path = tmp_path / "sgmesh.mesh.toml"
    written = write_mesh_file(path, mesh_of(deployed.config, FOUR, boto3.session.Session()))
    # THEN every region names its own stack's table, topic, groups; the cluster's settings are the deploy's
    assert written.written == path
    mesh = load(path)
    assert (mesh.cluster, mesh.rule_quota, mesh.source_silence_seconds) == (CLUSTER, 60, 2700)
    for region in FOUR:
        stack = DeployedStack(region, CLUSTER)
        entry = mesh.regions[region]
        assert (entry.table, entry.topic_arn) == (stack.physical_ids["Table"], topic(region))
        assert entry.security_group_ids == (deployed.security_groups[region],)
        assert entry.asg_names == GROUPS
        assert not entry.observe
        assert entry.queue_url == stack.physical_ids["Queue"]
    # ... and the CLI reads the deployment with it, no hand-copying
    assert [status.region for status in Operator(mesh, ClientFactory()).status()] == list(FOUR)
