"""The emulated lifecycle buffer: EventBridge -> SQS queue -> event source mapping -> producer, in
batches, with the buffer's own redrive to a dead-letter queue."""

from __future__ import annotations

import json

import boto3

from sgmesh.local.stack import StackSpec
from tests.support.mesh import TWO_REGIONS, Mesh, Provisioner

BUFFERED = StackSpec()  # the template's: lifecycle events are buffered
UNBUFFERED = StackSpec(lifecycle_buffer=False)


def test_given_a_storm_of_launches_then_the_producer_gets_them_in_batches_and_completes_each(
    aws: str,
    provisioned: Provisioner,
) -> None:
    # GIVEN a converged two-region mesh whose lifecycle events are buffered
    mesh = provisioned(Mesh(aws, TWO_REGIONS, BUFFERED))
    mesh.trueup_everywhere()
    assert mesh.run_until_converged().converged

    # WHEN us-east-1 launches 12 instances at once
    launched = mesh.scale("us-east-1", 14)
    assert mesh.run_until_converged().converged

    # THEN the producer ran twice, on SQS batches of 10 and 2 lifecycle events in EventBridge's shape
    batches = [invocation.event["Records"] for invocation in mesh.handled("us-east-1", "lifecycle")]
    assert [len(records) for records in batches] == [10, 2]
    buffer = mesh.buffers["us-east-1"].queue
    assert {record["eventSourceARN"] for records in batches for record in records} == {buffer.arn}
    bodies = [json.loads(record["body"]) for records in batches for record in records]
    assert sorted(body["detail"]["EC2InstanceId"] for body in bodies) == sorted(launched)
    # ... published the new membership once (the second batch found it already published), and
    # completed every action
    invocations = mesh.handled("us-east-1", "lifecycle")
    assert sum(call.operation == "Publish" for i in invocations for call in i.calls) == 1
    assert len(mesh.completion_calls()) == 12
    assert not mesh.hooks.pending
    assert mesh.buffers["us-east-1"].mapping.depth() == 0


def test_given_the_buffer_then_it_redrives_to_its_own_dead_letter_queue(
    aws: str, provisioned: Provisioner
) -> None:
    # GIVEN a buffered mesh; THEN its buffer queue holds events for 6 x the lifecycle function's timeout
    # plus the batching window, and parks a message after the spec's receive count, in the buffer's own DLQ
    mesh = provisioned(Mesh(aws, TWO_REGIONS, BUFFERED))
    buffer = mesh.buffers["us-west-2"].queue
    attributes = boto3.client("sqs", region_name="us-west-2").get_queue_attributes(
        QueueUrl=buffer.url, AttributeNames=["All"]
    )["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(attributes["VisibilityTimeout"]) == (
        6 * BUFFERED.lifecycle_timeout_seconds + BUFFERED.buffer_batching_window_seconds
    )
    assert int(redrive["maxReceiveCount"]) == BUFFERED.max_receive_count
    assert redrive["deadLetterTargetArn"].endswith(f":{BUFFERED.buffer_name}-dlq")


def test_given_no_buffer_then_each_lifecycle_event_invokes_the_producer_directly(
    aws: str,
    provisioned: Provisioner,
) -> None:
    # GIVEN a spec without the buffer (as the blog's baseline runs); WHEN two instances launch
    mesh = provisioned(Mesh(aws, TWO_REGIONS, UNBUFFERED))
    mesh.trueup_everywhere()
    assert mesh.run_until_converged().converged
    mesh.scale("us-east-1", 4)
    assert mesh.run_until_converged().converged
    # THEN the producer got each event as EventBridge sends it, one invocation each
    events = [invocation.event for invocation in mesh.handled("us-east-1", "lifecycle")]
    assert [event["detail-type"] for event in events] == ["EC2 Instance-launch Lifecycle Action"] * 2
    assert mesh.buffers == {}
