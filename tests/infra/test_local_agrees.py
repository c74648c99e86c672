"""The local runtime provisions what the SAM template declares, with the template's defaults: the two
definitions of the per-region stack cannot drift apart unnoticed."""

from __future__ import annotations

import re
from typing import Any, get_args

from schemas.names import ClusterName
from schemas.regions import sns_principals
from sgmesh.local.stack import ACCOUNT, RegionStack, StackSpec, queue_policy, topic_policy
from tests.infra.intrinsics import Resolver

SPEC = StackSpec()


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == kind}


def default(template: dict[str, Any], parameter: str) -> Any:
    return template["Parameters"][parameter]["Default"]


def test_queues_and_the_event_source_match(sam_template: dict[str, Any]) -> None:
    queue = sam_template["Resources"]["Queue"]["Properties"]
    dlq = sam_template["Resources"]["DeadLetterQueue"]["Properties"]
    consumer = sam_template["Resources"]["ConsumerFunction"]["Properties"]
    source = consumer["Events"]["Snapshots"]["Properties"]

    assert consumer["Timeout"] == SPEC.consumer_timeout_seconds
    assert queue["VisibilityTimeout"] == SPEC.visibility_timeout_seconds
    assert queue["RedrivePolicy"]["maxReceiveCount"] == SPEC.max_receive_count
    assert queue["MessageRetentionPeriod"] == SPEC.queue_retention_seconds
    assert dlq["MessageRetentionPeriod"] == SPEC.dlq_retention_seconds
    assert source["BatchSize"] == SPEC.batch_size
    assert source["MaximumBatchingWindowInSeconds"] == SPEC.batching_window_seconds
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_lifecycle_events_reach_the_producer_the_way_the_template_routes_them(
    sam_template: dict[str, Any],
) -> None:
    # The local runtime buffers lifecycle events (sgmesh/local/buffer.py) exactly when the template
    # puts a queue between the rule and the function: the rule targets the queue the function reads.
    template = sam_template["Resources"]
    lifecycle = template["LifecycleFunction"]["Properties"]
    sources = [event["Properties"] for event in lifecycle["Events"].values() if event["Type"] == "SQS"]
    assert bool(sources) == SPEC.lifecycle_buffer
    ((target,),) = [r["Properties"]["Targets"] for r in template.values() if r["Type"] == "AWS::Events::Rule"]
    (source,) = sources
    assert target["Arn"] == source["Queue"] == {"Fn::GetAtt": ["LifecycleBuffer", "Arn"]}
    assert lifecycle["Timeout"] == SPEC.lifecycle_timeout_seconds


def test_the_lifecycle_buffer_and_its_event_source_match(sam_template: dict[str, Any]) -> None:
    buffer = sam_template["Resources"]["LifecycleBuffer"]["Properties"]
    dlq = sam_template["Resources"]["LifecycleBufferDeadLetterQueue"]["Properties"]
    source = sam_template["Resources"]["LifecycleFunction"]["Properties"]["Events"]["LifecycleActions"]

    assert buffer["VisibilityTimeout"] == SPEC.buffer_visibility_timeout_seconds
    assert buffer["RedrivePolicy"]["maxReceiveCount"] == SPEC.max_receive_count
    assert buffer["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["LifecycleBufferDeadLetterQueue", "Arn"]
    }
    assert buffer["MessageRetentionPeriod"] == SPEC.queue_retention_seconds
    assert dlq["MessageRetentionPeriod"] == SPEC.dlq_retention_seconds
    assert source["Properties"]["BatchSize"] == SPEC.batch_size
    assert source["Properties"]["MaximumBatchingWindowInSeconds"] == SPEC.buffer_batching_window_seconds
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The local runtime is serial; in AWS two batches at most run at once (docs/deploying.md says so), which
    # keeps a storm's describes within EC2's throttling bucket.
    assert source["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 2}


def test_lifecycle_hooks_schedule_and_quota_defaults_match(sam_template: dict[str, Any]) -> None:
    assert default(sam_template, "LifecycleHeartbeatTimeout") == SPEC.heartbeat_timeout_seconds
    assert default(sam_template, "LifecycleDefaultResult") == SPEC.default_result
    assert default(sam_template, "RuleQuota") == SPEC.rule_quota
    assert default(sam_template, "EventRetentionDays") == SPEC.event_retention_days
    assert default(sam_template, "AddressMode") == SPEC.address
    assert default(sam_template, "MaxEventAgeSeconds") == SPEC.max_event_age_seconds
    assert default(sam_template, "Target") == SPEC.target
    rate = re.fullmatch(r"rate\((\d+) minutes?\)", default(sam_template, "TrueupSchedule"))
    assert rate is not None
    assert int(rate[1]) * 60 == SPEC.trueup_interval_seconds

    hooks = resources(sam_template, "AWS::AutoScaling::LifecycleHook").values()
    names = {hook["LifecycleHookName"]["Fn::Sub"].replace("${ClusterName}", SPEC.cluster) for hook in hooks}
    assert names == {SPEC.launch_hook, SPEC.terminate_hook}


def test_named_resources_match(sam_template: dict[str, Any]) -> None:
    topic = sam_template["Resources"]["Topic"]["Properties"]["TopicName"]["Fn::Sub"]
    assert topic.replace("${ClusterName}", SPEC.cluster) == SPEC.name


def test_every_function_gets_the_settings_the_local_runtime_gives_it(sam_template: dict[str, Any]) -> None:
    shared = set(sam_template["Globals"]["Function"]["Environment"]["Variables"])
    functions = resources(sam_template, "AWS::Serverless::Function")
    declared = shared.union(*(set(f.get("Environment", {}).get("Variables", {})) for f in functions.values()))
    stack = RegionStack(
        "us-east-1", "g", "sg-0123456789abcdef0", "t", "arn:aws:sns:us-east-1:1:t", "u", "a", "d"
    )
    local = set(stack.settings_environment(SPEC, [])) - {"AWS_REGION"}  # Lambda sets AWS_REGION itself
    assert local == declared


def test_the_template_accepts_exactly_the_cluster_names_the_code_accepts(
    sam_template: dict[str, Any],
) -> None:
    (constraint,) = get_args(ClusterName)[1:]
    assert sam_template["Parameters"]["ClusterName"]["AllowedPattern"] == constraint.pattern


def test_the_local_wiring_is_the_templates(sam_template: dict[str, Any]) -> None:
    """`sgmesh doctor` checks a local mesh as it checks a stack: the same policies, subscriptions and
    lifecycle rule, resolved here from the template for two regions, one of them opt-in."""
    topics = [f"arn:aws:sns:{region}:{ACCOUNT}:{SPEC.name}" for region in ("us-east-1", "af-south-1")]
    arns = {
        "Queue": f"arn:aws:sqs:us-east-1:{ACCOUNT}:queue",
        "DeliveryDeadLetterQueue": f"arn:aws:sqs:us-east-1:{ACCOUNT}:delivery",
        "LifecycleBuffer": f"arn:aws:sqs:us-east-1:{ACCOUNT}:buffer",
    }
    resolver = Resolver(
        sam_template,
        {
            "ClusterName": SPEC.cluster,
            "TopicArns": ",".join(topics),
            "SnsServicePrincipals": ",".join(sns_principals("us-east-1", ["us-east-1", "af-south-1"])),
            "AutoScalingGroupNames": "cassandra",
        },
        {"AWS::Region": "us-east-1", "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"},
        ref=lambda logical_id: topics[0] if logical_id == "Topic" else logical_id,
        getatt=lambda logical_id, _attribute: arns.get(logical_id, logical_id),
    )
    principals = sns_principals("us-east-1", ["us-east-1", "af-south-1"])
    for policy, queue in (
        ("QueuePolicy", "Queue"),
        ("DeliveryDeadLetterQueuePolicy", "DeliveryDeadLetterQueue"),
    ):
        resolved = resolver.resource(policy)
        assert resolved is not None
        assert resolved["PolicyDocument"] == queue_policy(arns[queue], topics, principals), policy
    topic_policy_resource = resolver.resource("TopicPolicy")
    assert topic_policy_resource is not None
    assert topic_policy_resource["PolicyDocument"] == topic_policy(topics[0])

    rule = resolver.resource("LifecycleRule")
    assert rule is not None
    ((target,),) = [rule["Targets"]]
    assert (target["Id"], target["Arn"]) == ("LifecycleBuffer", arns["LifecycleBuffer"])
    assert rule["Name"] == SPEC.lifecycle_rule
    assert rule["EventPattern"] == {
        "source": ["aws.autoscaling"],
        "detail-type": ["EC2 Instance-launch Lifecycle Action", "EC2 Instance-terminate Lifecycle Action"],
        "detail": {
            "AutoScalingGroupName": ["cassandra"],
            "LifecycleHookName": [SPEC.launch_hook, SPEC.terminate_hook],
        },
    }
    (subscription,) = [resolver.resource("Subscription1")]
    assert subscription is not None
    assert (subscription["RawMessageDelivery"], subscription["RedrivePolicy"]) == (
        False,
        {"deadLetterTargetArn": arns["DeliveryDeadLetterQueue"]},
    )
