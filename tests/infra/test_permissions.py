"""Least privilege, checked against the code: every AWS call each function makes is allowed by its role
as the deployed template grants it, and the role grants the code nothing it does not call."""

from __future__ import annotations

import fnmatch
import json
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from cloud.sns import Topic
from cloud.sns_certificates import install_certificate_source
from consumers import apply
from infra.deploy.config import ClusterConfig
from infra.deploy.deployment import Deployment
from infra.deploy.identity import caller_identity
from producers import lifecycle, trueup
from schemas.events import parse_snapshot
from schemas.settings import PortSpec
from sgmesh.local.clients import ApiCall, CallLedger, ClientExtension, ExtendedClientFactory
from sgmesh.local.embedded import EndpointSession
from sgmesh.local.esm import sqs_event
from sgmesh.local.eventbridge import lifecycle_event
from sgmesh.local.functions import Binding, invoke
from sgmesh.local.sns_certificates import install_local_certificates
from sgmesh.meshfile import MeshFile, RegionEntry
from sgmesh.operator import Operator
from tests.infra.stacks import ACCOUNT, DeployedStack
from tests.support.ec2 import reference_a_prefix_list

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")

REGION = "us-west-2"
CLUSTER = "perms"
GROUP = "cassandra"
# The botocore service ids of the calls, and the IAM prefixes of their actions.
IAM_PREFIX = {
    "auto-scaling": "autoscaling",
    "ec2": "ec2",
    "dynamodb": "dynamodb",
    "sns": "sns",
    "service-quotas": "servicequotas",
    "sqs": "sqs",
}
# Granted for what Lambda and the AWS services do on the function's behalf, not for calls in the code:
# logs (the runtime), KMS (SQS, SNS and DynamoDB encrypt and decrypt), SQS (the event source mappings
# of the snapshot queue and the lifecycle buffer, and the on-failure destination).
ON_BEHALF = ("logs:", "kms:", "sqs:")


class AcceptLifecycleCompletions:
    """moto has no CompleteLifecycleAction (docs/development.md, What moto lacks): answer it as AWS does
    for a pending action. The call is still recorded, and its permission checked, before it is answered."""

    def register(self, client: Any) -> None:
        if client.meta.service_model.service_id.hyphenize() == "auto-scaling":
            client.meta.events.register("before-call.auto-scaling.CompleteLifecycleAction", self._accept)

    @staticmethod
    def _accept(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse("", 200, HTTPHeaders(), None), {"ResponseMetadata": {"HTTPStatusCode": 200}}


@pytest.fixture(scope="module")
def stack(
    moto_endpoint: str, fake_artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> DeployedStack:
    """GIVEN one region deployed by the deploy script, with its wiring, and a group of two instances."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    group_id = ec2.create_security_group(GroupName="members", Description="members", VpcId=vpc_id)["GroupId"]
    # An operator's rule referencing a prefix list: the consumer weighs it by the list's size.
    reference_a_prefix_list(ec2, group_id, port=22, max_entries=5)
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_launch_template(LaunchTemplateName=GROUP, LaunchTemplateData={"ImageId": image_id})
    boto3.client("autoscaling", region_name=REGION).create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        LaunchTemplate={"LaunchTemplateName": GROUP},
        MinSize=0,
        MaxSize=4,
        DesiredCapacity=2,
        VPCZoneIdentifier=ec2.describe_subnets()["Subnets"][0]["SubnetId"],
    )
    config = tmp_path_factory.mktemp("perms") / "sgmesh.toml"
    config.write_text(
        f'cluster = "{CLUSTER}"\nports = "tcp:7000"\nauto_scaling_groups = ["{GROUP}"]\n'
        f'[regions.{REGION}]\nsecurity_groups = ["{group_id}"]\n'
    )
    session = boto3.session.Session()
    deployment = Deployment(ClusterConfig.load(config), [REGION], session, lambda _line: None)
    deployment.run(caller_identity(session, REGION), lambda: fake_artifacts)
    deployed = DeployedStack(REGION, CLUSTER)
    deployed.apply_wiring()
    return deployed


class Functions:
    """Runs the real handlers as the deployed functions (their environments), recording their calls."""

    def __init__(self, stack: DeployedStack, endpoint: str) -> None:
        self.stack = stack
        self.endpoint = endpoint
        self.ledger = CallLedger()
        # Set by a test that needs a throttled call (ThrottleOnce), on the clients of the next invocations.
        self.throttle: ClientExtension | None = None
        self.made: dict[str, list[ApiCall]] = {
            "TrueupFunction": [],
            "ConsumerFunction": [],
            "LifecycleFunction": [],
        }

    def run(self, function: str, bind: Binding, event: dict[str, Any], **overrides: str) -> Any:
        configuration = boto3.client("lambda", region_name=REGION).get_function_configuration(
            FunctionName=self.stack.physical_ids[function]
        )
        environment = {name: str(value) for name, value in configuration["Environment"]["Variables"].items()}
        mark = self.ledger.mark()
        # Each invocation starts cold: new clients, so new services.
        extensions: list[ClientExtension] = [self.ledger, AcceptLifecycleCompletions()]
        clients = ExtendedClientFactory(
            EndpointSession(self.endpoint), *extensions, *([self.throttle] if self.throttle else [])
        )
        install_local_certificates(self.endpoint)
        environment |= {"AWS_REGION": REGION, **overrides}
        try:
            # Lambda ships EMF lines to CloudWatch; the alarm tests read them from stdout.
            return invoke(bind, function, environment, clients, event, metrics=sys.stdout)
        finally:
            install_certificate_source(None)
            self.made[function] += self.ledger.since(mark)

    def deliver(self, **overrides: str) -> Any:
        """Hand what the queue holds to the consumer, as its event source mapping would."""
        return self._poll("Queue", "ConsumerFunction", apply.bind, **overrides)

    def lifecycle_action(self, event: dict[str, Any]) -> Any:
        """The lifecycle rule puts the event on the buffer (its target); the buffer's event source
        mapping hands it to the lifecycle function."""
        sqs = boto3.client("sqs", region_name=REGION)
        sqs.send_message(QueueUrl=self.stack.physical_ids["LifecycleBuffer"], MessageBody=json.dumps(event))
        return self._poll("LifecycleBuffer", "LifecycleFunction", lifecycle.bind)

    def launch_waits_until_timeout(self, event: dict[str, Any]) -> None:
        """The launch is held with a one-second timer, and the timer fires before any acknowledgement
        (moto delays messages by the wall clock): the lifecycle function takes the buffer's messages
        until the launch is settled."""
        sqs = boto3.client("sqs", region_name=REGION)
        sqs.send_message(QueueUrl=self.stack.physical_ids["LifecycleBuffer"], MessageBody=json.dumps(event))
        self._poll(
            "LifecycleBuffer", "LifecycleFunction", lifecycle.bind, SGMESH_ADMISSION_TIMEOUT_SECONDS="1"
        )
        key = {
            "pk": {"S": f"admission#{CLUSTER}"},
            "sk": {"S": f"{GROUP}#{event['detail']['EC2InstanceId']}"},
        }
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        deadline = time.monotonic() + 10
        while dynamodb.get_item(TableName=self.stack.physical_ids["Table"], Key=key)["Item"]["status"][
            "S"
        ] == ("pending"):
            assert time.monotonic() < deadline, "the admission timer never fired"
            time.sleep(0.2)
            self._poll("LifecycleBuffer", "LifecycleFunction", lifecycle.bind)

    def admission_check(self) -> Any:
        """The lifecycle buffer hands the consumer's admission check to the lifecycle function."""
        return self._poll("LifecycleBuffer", "LifecycleFunction", lifecycle.bind)

    def _poll(self, queue: str, function: str, bind: Binding, **overrides: str) -> Any:
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = self.stack.physical_ids[queue]
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not received:
            return None
        messages: list[dict[str, Any]] = [dict(message) for message in received]
        event = sqs_event(messages, queue_arn=self.stack.attribute(queue, "Arn"), region=REGION)
        result = self.run(function, bind, event, **overrides)
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return result

    def scale(self, capacity: int) -> list[str]:
        autoscaling = boto3.client("autoscaling", region_name=REGION)
        autoscaling.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=capacity)
        (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])[
            "AutoScalingGroups"
        ]
        return [instance["InstanceId"] for instance in group["Instances"]]


def launch_event(instance_id: str) -> dict[str, Any]:
    """What the lifecycle rule hands the buffer when the group launches the instance."""
    return lifecycle_event(
        account=ACCOUNT,
        region=REGION,
        group=GROUP,
        instance_id=instance_id,
        launching=True,
        hook=f"sgmesh-{CLUSTER}-launching",
        token=str(uuid.uuid4()),
    )


@pytest.fixture(scope="module")
def functions(stack: DeployedStack, moto_endpoint: str) -> Functions:
    return Functions(stack, moto_endpoint)


@pytest.fixture(scope="module")
def calls(functions: Functions) -> dict[str, list[ApiCall]]:
    """WHEN the real handlers run with their deployed environments through a true-up, a lifecycle
    action and a scale-in, THEN every call each one made is recorded under its function."""
    assert functions.run("TrueupFunction", trueup.bind, {})["published"]
    assert functions.deliver() == {"batchItemFailures": []}
    members = set(functions.scale(2))
    # A launch: the new instance is not in the published membership yet, so it is published again.
    (instance_id,) = set(functions.scale(3)) - members
    event = launch_event(instance_id)
    assert functions.lifecycle_action(event) == {"batchItemFailures": []}
    # The launch waits for the barrier: the consumer applies and acknowledges the snapshot, records its
    # own acknowledgement (the only region), and has the lifecycle function complete the launch.
    functions.deliver()
    assert functions.deliver() == {"batchItemFailures": []}
    assert functions.admission_check() == {"batchItemFailures": []}
    functions.scale(0)
    assert functions.run("TrueupFunction", trueup.bind, {})["published"]
    assert functions.deliver() == {"batchItemFailures": []}
    return functions.made


def test_the_scenario_exercised_every_kind_of_write(calls: dict[str, list[ApiCall]]) -> None:
    operations = {function: {call.operation for call in made} for function, made in calls.items()}
    # Publish: the consumer found its table empty at the first delivery, and asked for a resync.
    assert {
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
        "PutItem",
        "BatchWriteItem",
        "Publish",
    } <= operations["ConsumerFunction"]
    assert {"UpdateItem", "Publish"} <= operations["TrueupFunction"]
    assert "CompleteLifecycleAction" in operations["LifecycleFunction"]
    # The admission barrier: the launch's record and timer, and the consumer's request to settle it.
    assert {"BatchWriteItem", "SendMessage"} <= operations["LifecycleFunction"]
    assert "SendMessage" in operations["ConsumerFunction"]


@pytest.mark.parametrize("function", ["TrueupFunction", "LifecycleFunction", "ConsumerFunction"])
def test_every_call_is_allowed_and_every_grant_is_used(
    stack: DeployedStack, calls: dict[str, list[ApiCall]], function: str
) -> None:
    statements = list(_statements(stack, function))
    refused = [
        f"{_action(call)} on {_resource(stack, call)}"
        for call in calls[function]
        if not _allowed(stack, statements, call)
    ]
    assert refused == []
    granted = {action for statement in statements for action in _listed(statement["Action"])}
    used = {_action(call) for call in calls[function]}
    # Grants for what is done on the function's behalf may go unused by the code; the code's own calls
    # (the admission barrier's SendMessage to the lifecycle buffer, say) are all checked above.
    assert {action for action in granted if not action.startswith(ON_BEHALF)} == {
        action for action in used if not action.startswith(ON_BEHALF)
    }


def _statements(stack: DeployedStack, function: str) -> Iterator[dict[str, Any]]:
    """The Allow statements of the function's role: inline policies and attached managed policies."""
    role_id = stack.template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = stack.resolved(role_id)
    assert role is not None
    documents = [policy["PolicyDocument"] for policy in role.get("Policies", [])]
    for arn in role.get("ManagedPolicyArns", []):
        (policy_id,) = [logical for logical, physical in stack.physical_ids.items() if physical == arn]
        policy = stack.resolved(policy_id)
        assert policy is not None
        documents.append(policy["PolicyDocument"])
    for document in documents:
        yield from (statement for statement in document["Statement"] if statement["Effect"] == "Allow")


def _allowed(stack: DeployedStack, statements: list[dict[str, Any]], call: ApiCall) -> bool:
    action, resource, keys = _action(call), _resource(stack, call), _leading_keys(call)
    for statement in statements:
        if not any(fnmatch.fnmatchcase(action, pattern) for pattern in _listed(statement["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(resource, pattern) for pattern in _listed(statement["Resource"])):
            continue
        condition = statement.get("Condition", {})
        # The only condition the roles use; any other would need teaching to this check first.
        assert set(condition) <= {"ForAllValues:StringEquals"}, condition
        permitted = condition.get("ForAllValues:StringEquals", {}).get("dynamodb:LeadingKeys")
        if permitted is None or keys <= set(permitted):
            return True
    return False


def _action(call: ApiCall) -> str:
    return f"{IAM_PREFIX[call.service]}:{call.operation}"


def _resource(stack: DeployedStack, call: ApiCall) -> str:
    """The ARN IAM authorizes the call on (Describe calls support no resource-level permissions)."""
    params, region = call.params, call.region
    if call.operation.startswith("Describe"):
        return "*"
    if call.service == "dynamodb":
        (table,) = params["RequestItems"] if "RequestItems" in params else [params["TableName"]]
        return f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}"
    if call.service == "sns":
        return str(params["TopicArn"])
    if call.service == "ec2":
        return f"arn:aws:ec2:{region}:{ACCOUNT}:security-group/{params['GroupId']}"
    if call.service == "sqs":
        # A queue URL ends in /<account>/<name>; its ARN is arn:aws:sqs:<region>:<account>:<name>.
        account, name = str(params["QueueUrl"]).rsplit("/", 2)[1:]
        return f"arn:aws:sqs:{region}:{account}:{name}"
    if call.service == "service-quotas":
        return f"arn:aws:servicequotas:{region}:{ACCOUNT}:{params['ServiceCode']}/{params['QuotaCode']}"
    if call.service == "auto-scaling":
        # The group's id is part of its ARN; the policy must admit any id with the group's name.
        group = f"autoScalingGroup:{uuid.uuid4()}:autoScalingGroupName/{params['AutoScalingGroupName']}"
        return f"arn:aws:autoscaling:{region}:{ACCOUNT}:{group}"
    raise AssertionError(f"no resource for {call}")


def _leading_keys(call: ApiCall) -> set[str]:
    """The partition keys a DynamoDB call touches (what dynamodb:LeadingKeys is compared with)."""
    params = call.params
    if call.service != "dynamodb":
        return set()
    if "Key" in params:
        return {params["Key"]["pk"]["S"]}
    if "Item" in params:
        return {params["Item"]["pk"]["S"]}
    if "RequestItems" in params:
        return {
            request["PutRequest"]["Item"]["pk"]["S"]
            if "PutRequest" in request
            else request["DeleteRequest"]["Key"]["pk"]["S"]
            for requests_ in params["RequestItems"].values()
            for request in requests_
        }
    return {params["ExpressionAttributeValues"][":pk"]["S"]}


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def emitted(stdout: str) -> list[dict[str, Any]]:
    """The embedded metric format documents a function printed (CloudWatch makes metrics of them)."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{") and '"_aws"' in line]


def alarm_sum(alarm: dict[str, Any], documents: list[dict[str, Any]]) -> float:
    """The sum of the alarm's metric in these documents: its namespace, name and exact dimensions."""
    dimensions = {dimension["Name"]: dimension["Value"] for dimension in alarm["Dimensions"]}
    total = 0.0
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if (
                directive["Namespace"] == alarm["Namespace"]
                and alarm["MetricName"] in {metric["Name"] for metric in directive["Metrics"]}
                and any(set(names) == set(dimensions) for names in directive["Dimensions"])
                and all(document.get(name) == value for name, value in dimensions.items())
            ):
                value = document[alarm["MetricName"]]
                total += sum(value) if isinstance(value, list) else value
    return total


def test_a_plan_over_the_quota_trips_the_rule_quota_alarm(
    stack: DeployedStack,
    functions: Functions,
    calls: dict[str, list[ApiCall]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GIVEN two members and a quota of one rule, WHEN the consumer applies their snapshot, THEN it
    refuses the plan and emits the metric the stack's RuleQuotaAlarm watches, up to its threshold."""
    alarm = stack.resolved("RuleQuotaAlarm")
    assert alarm is not None
    functions.scale(2)
    assert functions.run("TrueupFunction", trueup.bind, {})["published"]
    capsys.readouterr()
    before = len(functions.made["ConsumerFunction"])
    refused = functions.deliver(SGMESH_RULE_QUOTA="1")
    assert refused["batchItemFailures"]
    assert alarm_sum(alarm, emitted(capsys.readouterr().out)) >= float(alarm["Threshold"])
    writes = [call.operation for call in functions.made["ConsumerFunction"][before:] if call.service == "ec2"]
    assert "AuthorizeSecurityGroupIngress" not in writes


def test_a_forged_snapshot_trips_the_records_rejected_alarm(
    stack: DeployedStack,
    functions: Functions,
    calls: dict[str, list[ApiCall]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GIVEN a message on the queue in an envelope from a topic that is not a peer, WHEN the consumer
    gets it, THEN it rejects the record and emits the metric the stack's RecordsRejectedAlarm watches."""
    alarm = stack.resolved("RecordsRejectedAlarm")
    assert alarm is not None
    forged = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:not-a-peer",
        "Message": "{}",
    }
    boto3.client("sqs", region_name=REGION).send_message(
        QueueUrl=stack.physical_ids["Queue"], MessageBody=json.dumps(forged)
    )
    capsys.readouterr()
    rejected = functions.deliver()
    assert len(rejected["batchItemFailures"]) == 1
    assert alarm_sum(alarm, emitted(capsys.readouterr().out)) >= float(alarm["Threshold"])


def test_the_checker_refuses_what_the_roles_do_not_grant(stack: DeployedStack) -> None:
    """The check above can fail: another table's keys, another group, another topic are refused."""
    consumer = list(_statements(stack, "ConsumerFunction"))
    producer = list(_statements(stack, "TrueupFunction"))
    table = stack.physical_ids["Table"]
    foreign_key = ApiCall(
        REGION, "dynamodb", "PutItem", {"TableName": table, "Item": {"pk": {"S": f"producer#{CLUSTER}"}}}
    )
    other_group = ApiCall(REGION, "ec2", "AuthorizeSecurityGroupIngress", {"GroupId": "sg-0000000000000000f"})
    other_topic = ApiCall(
        REGION, "sns", "Publish", {"TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:sgmesh-{CLUSTER}"}
    )
    assert not _allowed(stack, consumer, foreign_key)
    assert not _allowed(stack, consumer, other_group)
    assert not _allowed(stack, producer, other_topic)


@pytest.fixture(scope="module")
def operator_calls(
    stack: DeployedStack, calls: dict[str, list[ApiCall]], moto_endpoint: str
) -> list[ApiCall]:
    """WHEN an operator runs `sgmesh status`, `plan`, `events` and `adopt --apply` (after a hand-made
    rule for a member was added) against the deployed region, THEN every call the CLI made is recorded."""
    ec2 = boto3.client("ec2", region_name=REGION)
    group_id = stack.parameters["SecurityGroupIds"]
    functions = Functions(stack, moto_endpoint)
    functions.scale(1)
    assert functions.run("TrueupFunction", trueup.bind, {})["published"]
    functions.deliver()
    (address,) = {
        rule["CidrIpv4"]
        for rule in ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])[
            "SecurityGroupRules"
        ]
        if rule.get("Description", "").startswith(f"sgmesh:{CLUSTER} ")
    }
    managed = [
        rule["SecurityGroupRuleId"]
        for rule in ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])[
            "SecurityGroupRules"
        ]
        if rule.get("CidrIpv4") == address
    ]
    ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=managed)
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 7000, "ToPort": 7000, "IpRanges": [{"CidrIp": address}]}
        ],
    )
    mesh = MeshFile(
        cluster=CLUSTER,
        ports=(PortSpec.parse("tcp:7000"),),
        regions={
            REGION: RegionEntry(
                table=stack.physical_ids["Table"],
                topic_arn=stack.physical_ids["Topic"],
                asg_names=(GROUP,),
                security_group_ids=(group_id,),
            )
        },
    )
    ledger = CallLedger()
    operator = Operator(mesh, ExtendedClientFactory(EndpointSession(moto_endpoint), ledger))
    operator.status()
    operator.plan(REGION)
    operator.events(REGION)
    (adopted,) = operator.adopt(REGION, apply=True)
    assert adopted.applied
    return ledger.calls


def test_the_operator_policy_allows_every_call_the_cli_makes_and_nothing_else(
    stack: DeployedStack, operator_calls: list[ApiCall]
) -> None:
    policy = stack.resolved("OperatorPolicy")
    assert policy is not None
    statements = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    refused = [
        f"{_action(call)} on {_resource(stack, call)}"
        for call in operator_calls
        if not _allowed(stack, statements, call)
    ]
    assert refused == []
    granted = {action for statement in statements for action in _listed(statement["Action"])}
    # kms:Decrypt is DynamoDB's, on the operator's behalf (the table is encrypted with the stack's key).
    assert granted - {"kms:Decrypt"} == {_action(call) for call in operator_calls}
    assert "ec2:UpdateSecurityGroupRuleDescriptionsIngress" in granted
    # ... and only the managed groups may be adopted in
    other_group = ApiCall(
        REGION, "ec2", "UpdateSecurityGroupRuleDescriptionsIngress", {"GroupId": "sg-0000000000000000f"}
    )
    assert not _allowed(stack, statements, other_group)


@pytest.mark.parametrize("function", ["TrueupFunction", "LifecycleFunction", "ConsumerFunction"])
def test_no_function_may_adopt(stack: DeployedStack, function: str) -> None:
    """Adoption runs with the operator's credentials: no function's role has the action."""
    granted = {action for s in _statements(stack, function) for action in _listed(s["Action"])}
    assert not any(fnmatch.fnmatchcase("ec2:UpdateSecurityGroupRuleDescriptionsIngress", a) for a in granted)


class ThrottleOnce:
    """EC2 answers the consumer's first DescribeSecurityGroupRules with RequestLimitExceeded, as AWS
    does under load; botocore retries it (so the call still succeeds) and the consumer counts it."""

    def __init__(self) -> None:
        self.throttled = False

    def register(self, client: Any) -> None:
        if client.meta.service_model.service_name == "ec2":
            client.meta.events.register("before-send.ec2.DescribeSecurityGroupRules", self._throttle)

    def _throttle(self, **_: Any) -> AWSResponse | None:
        if self.throttled:
            return None
        self.throttled = True
        body = (
            b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
            b"</Message></Error></Errors><RequestID>throttled</RequestID></Response>"
        )
        return AWSResponse("https://ec2.amazonaws.com/", 503, HTTPHeaders(), _Raw(body))


class _Raw:
    """The raw body botocore reads from an HTTP response."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


Metric = tuple[str, str, frozenset[tuple[str, str]]]


def emitted_metrics(documents: list[dict[str, Any]]) -> set[Metric]:
    """(namespace, name, dimensions with their values) of every metric in these EMF documents."""
    found: set[Metric] = set()
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for names in directive["Dimensions"]:
                dimensions = frozenset((name, str(document[name])) for name in names)
                found |= {
                    (directive["Namespace"], metric["Name"], dimensions) for metric in directive["Metrics"]
                }
    return found


def dashboard_metrics(body: str) -> set[Metric]:
    """Every metric a dashboard's widgets chart: [namespace, name, dim, value, ..., {options}?]."""
    named: set[Metric] = set()
    for widget in json.loads(body)["widgets"]:
        for line in widget["properties"].get("metrics", []):
            fields = [item for item in line if not isinstance(item, dict)]
            namespace, name, *pairs = fields
            named.add((namespace, name, frozenset(zip(pairs[::2], pairs[1::2], strict=True))))
    return named


def alarm_metric(alarm: dict[str, Any]) -> Metric:
    dimensions = frozenset((d["Name"], str(d["Value"])) for d in alarm.get("Dimensions", []))
    return alarm["Namespace"], alarm["MetricName"], dimensions


def test_every_metric_the_alarms_and_the_dashboard_name_is_one_the_functions_emit(
    stack: DeployedStack,
    functions: Functions,
    calls: dict[str, list[ApiCall]],
    moto_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GIVEN the deployed region, WHEN the real handlers meet each outcome the dashboard charts (snapshots
    applied, coalesced, expired and rejected, a throttled call, a launch admitted by the barrier, a quota
    too small),
    THEN every sgmesh metric an alarm or the dashboard names is in the EMF they printed, with the same
    namespace and dimensions, and every AWS metric is one of the stack's own resources."""
    capsys.readouterr()
    sqs = boto3.client("sqs", region_name=REGION)
    # Applied and coalesced: two true-ups of one group in one batch.
    assert functions.run("TrueupFunction", trueup.bind, {})["published"]
    assert functions.run("TrueupFunction", trueup.bind, {})["published"]
    functions.deliver()
    # Expired: a snapshot produced longer ago than the maximum event age.
    message = [
        call.params["Message"] for call in functions.made["TrueupFunction"] if call.operation == "Publish"
    ][-1]
    old = parse_snapshot(message)
    old = old.model_copy(
        update={"version": old.version + 1, "produced_at": datetime.now(UTC) - timedelta(days=1)}
    )
    Topic(boto3.client("sns", region_name=REGION), stack.physical_ids["Topic"]).publish(old)
    functions.deliver()
    # Rejected: an envelope from a topic that is no peer.
    forged = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:x",
        "Message": "{}",
    }
    sqs.send_message(QueueUrl=stack.physical_ids["Queue"], MessageBody=json.dumps(forged))
    functions.deliver()
    # Throttled: the consumer's describe is throttled once and retried.
    assert functions.run("TrueupFunction", trueup.bind, {})["published"]
    functions.throttle = ThrottleOnce()
    functions.deliver()
    functions.throttle = None
    # A launch completed through its lifecycle hook.
    members = set(functions.scale(1))
    (instance_id,) = set(functions.scale(2)) - members
    event = launch_event(instance_id)
    functions.lifecycle_action(event)
    # ... through the barrier: the snapshot applied and acknowledged, the acknowledgement recorded (the
    # mesh converged), the launch admitted.
    functions.deliver()
    functions.deliver()
    functions.admission_check()
    # ... and one at the admission timeout (a second, as small as SQS delays go): no region answered.
    (late,) = set(functions.scale(3)) - members - {instance_id}
    functions.launch_waits_until_timeout(launch_event(late))
    # Over the quota: a plan that cannot fit (the late launch's snapshot, waiting on the queue).
    functions.deliver(SGMESH_RULE_QUOTA="1")
    printed = emitted_metrics(emitted(capsys.readouterr().out))

    alarms = {
        logical_id: alarm_metric(alarm)
        for logical_id, alarm in stack.resolved_of_type("AWS::CloudWatch::Alarm").items()
    }
    dashboard = stack.resolved("Dashboard")
    assert dashboard is not None
    charted = dashboard_metrics(dashboard["DashboardBody"])
    ours = {metric for metric in [*alarms.values(), *charted] if metric[0] == "sgmesh"}
    assert ours - printed == set()
    # The dashboard charts what the issue asks for, and the two new alarms watch what it charts.
    assert {name for _namespace, name, _dimensions in charted} >= {
        "SnapshotsApplied",
        "SnapshotsStale",
        "SnapshotsExpired",
        "RecordsRejected",
        "ReplicationLagSeconds",
        "OldestSourceAgeSeconds",
        "RuleHeadroom",
        "ApiThrottled",
        "LifecycleActionsCompleted",
        "LaunchesAdmitted",
        "MeshConvergenceSeconds",
        "ApproximateNumberOfMessagesVisible",
    }
    assert {alarms["SourceSilenceAlarm"], alarms["RuleHeadroomAlarm"]} <= charted
    # AWS's own metrics: the stack's own queues and function.
    queues = {
        stack.attribute(queue, "QueueName")
        for queue in (
            "Queue",
            "DeadLetterQueue",
            "DeliveryDeadLetterQueue",
            "LifecycleBuffer",
            "LifecycleBufferDeadLetterQueue",
            "ProducerDeadLetterQueue",
        )
    }
    for namespace, _name, dimensions in [*alarms.values(), *charted]:
        if namespace == "AWS/SQS":
            assert {value for _key, value in dimensions} <= queues
        elif namespace == "AWS/Lambda":
            assert dimensions == {("FunctionName", stack.physical_ids["ConsumerFunction"])}
