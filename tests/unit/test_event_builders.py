"""The local runtime's event builders produce exactly the shape of AWS's events (the golden files)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from schemas.lifecycle import LifecycleAction, Place, TrueupRequest, parse_producer_event
from sgmesh.local.esm import sqs_event
from sgmesh.local.eventbridge import lifecycle_event
from tests.support.golden import golden, shape

GROUP_ARN = re.compile(
    r"^arn:aws:autoscaling:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):autoScalingGroup:"
    r"(?P<uuid>[0-9a-f-]{36}):autoScalingGroupName/(?P<group>.+)$"
)
EVENTBRIDGE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def without_fresh_values(event: dict[str, Any]) -> dict[str, Any]:
    """The event with what differs per emission (id, time, the group's uuid in its ARN) blanked."""
    (resource,) = event["resources"]
    match = GROUP_ARN.match(resource)
    assert match is not None, resource
    uuid.UUID(match["uuid"])
    uuid.UUID(event["id"])
    assert EVENTBRIDGE_TIME.match(event["time"]), event["time"]
    return {
        **event,
        "id": "-",
        "time": "-",
        "resources": [resource.replace(match["uuid"], "-")],
    }


def build_like(expected: dict[str, Any], *, launching: bool) -> dict[str, Any]:
    detail = expected["detail"]
    return lifecycle_event(
        account=expected["account"],
        region=expected["region"],
        group=detail["AutoScalingGroupName"],
        instance_id=detail["EC2InstanceId"],
        launching=launching,
        hook=detail["LifecycleHookName"],
        token=detail["LifecycleActionToken"],
    )


@pytest.mark.parametrize(("name", "launching"), [("lifecycle_launch", True), ("lifecycle_terminate", False)])
def test_given_a_golden_lifecycle_event_when_built_from_its_fields_then_only_fresh_values_differ(
    name: str, launching: bool
) -> None:
    # GIVEN the event AWS sends, WHEN the local EventBridge builds one for the same action
    expected = golden(name)
    built = build_like(expected, launching=launching)

    # THEN it has exactly the golden file's keys, in the same JSON types, and the same values
    assert shape(built) == shape(expected)
    assert list(built) == list(expected)
    assert list(built["detail"]) == list(expected["detail"])
    assert without_fresh_values(built) == without_fresh_values(expected)


def test_given_two_emissions_of_one_action_then_each_event_has_its_own_id() -> None:
    expected = golden("lifecycle_launch")
    assert build_like(expected, launching=True)["id"] != build_like(expected, launching=True)["id"]


def test_given_the_golden_sqs_event_when_built_from_the_received_messages_then_it_is_identical() -> None:
    # GIVEN the SQS event Lambda delivers, and the messages ReceiveMessage returned for it
    expected = golden("sqs_snapshot_batch")
    received = [
        {
            "MessageId": record["messageId"],
            "ReceiptHandle": record["receiptHandle"],
            "MD5OfBody": record["md5OfBody"],
            "Body": record["body"],
            "Attributes": record["attributes"],
        }
        for record in expected["Records"]
    ]
    (record,) = expected["Records"]

    # WHEN the local event source mapping builds its event from them
    built = sqs_event(received, queue_arn=record["eventSourceARN"], region=record["awsRegion"])

    # THEN it is the golden event, key for key
    assert shape(built) == shape(expected)
    assert built == expected


@pytest.mark.parametrize(("name", "launching"), [("lifecycle_launch", True), ("lifecycle_terminate", False)])
def test_given_a_golden_lifecycle_event_then_the_producer_reads_the_action_it_carries(
    name: str, launching: bool
) -> None:
    event = golden(name)
    detail = event["detail"]
    assert parse_producer_event(event) == LifecycleAction(
        group_name=detail["AutoScalingGroupName"],
        instance_id=detail["EC2InstanceId"],
        hook_name=detail["LifecycleHookName"],
        token=detail["LifecycleActionToken"],
        launching=launching,
        origin=Place(detail["Origin"]),
        destination=Place(detail["Destination"]),
    )


def test_given_the_golden_seed_trueup_event_then_the_producer_reads_a_trueup_of_its_group() -> None:
    assert parse_producer_event(golden("trueup_seed")) == TrueupRequest(("sgmesh-us-east-1",))
