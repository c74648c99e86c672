"""The functions' queues and log groups as AWS's guidance wants them: read from the deployed template."""

from __future__ import annotations

from typing import Any

from tests.infra.intrinsics import SUB_VARIABLE, Resolver


def resources_of(transformed: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in transformed["Resources"].items()
        if resource["Type"] == resource_type
    }


def referenced(node: Any) -> set[str]:
    """The names a template node refers to: Ref, Fn::GetAtt and ${...} in Fn::Sub."""
    if isinstance(node, list):
        return set().union(*map(referenced, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for key, value in node.items():
        if key == "Ref":
            found.add(value)
        elif key == "Fn::GetAtt":
            found.add(value[0] if isinstance(value, list) else value.split(".")[0])
        elif key == "Fn::Sub":
            text = value if isinstance(value, str) else value[0]
            found |= {match.split(".")[0] for match in SUB_VARIABLE.findall(text)}
            found |= referenced(value[1:] if isinstance(value, list) else [])
        else:
            found |= referenced(value)
    return found


def dependencies(transformed: dict[str, Any], logical_id: str) -> set[str]:
    """Every resource CloudFormation creates before this one: its references and DependsOn, transitively."""
    resources = transformed["Resources"]
    seen: set[str] = set()
    pending = [logical_id]
    while pending:
        resource = resources[pending.pop()]
        depends_on = resource.get("DependsOn", [])
        direct = referenced(resource.get("Properties", {})) | set(
            [depends_on] if isinstance(depends_on, str) else depends_on
        )
        for name in (direct & set(resources)) - seen:
            seen.add(name)
            pending.append(name)
    return seen


def test_every_sqs_event_source_waits_out_six_function_timeouts_and_the_batching_window(
    transformed: dict[str, Any],
) -> None:
    """AWS Lambda Developer Guide, "Creating and configuring an Amazon SQS event source mapping": set the
    queue's visibility timeout to at least six times the function's timeout, and with a batching window
    add MaximumBatchingWindowInSeconds, so that a batch still being gathered or processed (or retried
    after a throttle) never becomes visible again. The queues used to be exactly 6 x 60 s, with a 2 s
    and a 5 s window on top."""
    queues = resources_of(transformed, "AWS::SQS::Queue")
    functions = resources_of(transformed, "AWS::Lambda::Function")
    mappings = resources_of(transformed, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 2
    short = []
    for logical_id, mapping in mappings.items():
        properties = mapping["Properties"]
        (queue,) = referenced(properties["EventSourceArn"]) & set(queues)
        (function,) = referenced(properties["FunctionName"]) & set(functions)
        timeout = functions[function]["Properties"]["Timeout"]
        window = properties.get("MaximumBatchingWindowInSeconds", 0)
        visibility = queues[queue]["Properties"]["VisibilityTimeout"]
        if visibility < 6 * timeout + window:
            short.append(f"{logical_id}: {queue} {visibility} s < 6 x {timeout} s + {window} s")
    assert short == []


def test_each_function_logs_to_its_own_group_created_before_it_with_retention_and_the_key(
    transformed: dict[str, Any],
) -> None:
    """GIVEN the stack's functions, THEN each one's LoggingConfig names a log group of the stack, named
    as Lambda's default for the function, with the retention and the key, which CloudFormation creates
    before the function (the group does not depend on it). A group named after the function used to be
    created after it: Lambda could create the group first, unencrypted and kept forever, and the
    stack's own creation then failed on the existing name, or the first lines went to it."""
    resolver = Resolver(
        transformed,
        {"ClusterName": "demo"},
        {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"},
        ref=lambda logical_id: f"{logical_id}-id",
        getatt=lambda logical_id, attribute: f"{logical_id}.{attribute}",
    )
    log_groups = resources_of(transformed, "AWS::Logs::LogGroup")
    functions = resources_of(transformed, "AWS::Lambda::Function")
    assert len(functions) == 3
    for logical_id, function in functions.items():
        logging = function["Properties"].get("LoggingConfig", {})
        (group,) = referenced(logging.get("LogGroup", {})) & set(log_groups) or [None]
        assert group is not None, f"{logical_id} names no log group of the stack"
        name = resolver.resolve(function["Properties"]["FunctionName"])
        group_properties = resolver.resolve(log_groups[group]["Properties"])
        assert group_properties["LogGroupName"] == f"/aws/lambda/{name}", logical_id
        assert group_properties["RetentionInDays"] == "365", logical_id
        assert group_properties["KmsKeyId"] == "Key.Arn", logical_id
        assert logical_id not in dependencies(transformed, group), logical_id
        assert group in dependencies(transformed, logical_id), logical_id


def test_the_dependency_reader_sees_references_in_sub_and_depends_on() -> None:
    template = {
        "Resources": {
            "A": {"Type": "T", "Properties": {"X": {"Fn::Sub": "/x/${B}"}}},
            "B": {"Type": "T", "DependsOn": "C", "Properties": {}},
            "C": {"Type": "T", "Properties": {"Y": {"Fn::GetAtt": ["D", "Arn"]}}},
            "D": {"Type": "T", "Properties": {}},
        }
    }
    assert dependencies(template, "A") == {"B", "C", "D"}
    assert dependencies(template, "D") == set()
