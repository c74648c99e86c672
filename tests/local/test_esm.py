"""The emulated SQS event source mapping: batches, partial failures, visibility, redrive, pausing."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sgmesh.local.stack import ACCOUNT
from tests.support.golden import golden, shape
from tests.support.mesh import SNAPSHOT_ATTRIBUTES, Mesh

POISON = "{not a snapshot"


def converge(mesh: Mesh) -> None:
    mesh.trueup_everywhere()
    assert mesh.run_until_converged().converged


def stored_version(mesh: Mesh, region: str, source_region: str) -> int:
    """The version of `source_region`'s snapshot that `region`'s consumer stored."""
    source = f"{ACCOUNT}/{source_region}/{mesh.stacks[source_region].group_name}"
    item = mesh.dynamodb(region).get_item(
        TableName=mesh.stacks[region].table_name,
        Key={"pk": {"S": f"state#{mesh.spec.cluster}"}, "sk": {"S": source}},
    )["Item"]
    return int(item["version"]["N"])


def envelope_message(record: dict[str, Any]) -> str:
    message: str = json.loads(record["body"])["Message"]
    return message


def test_given_more_messages_than_a_batch_then_they_are_handed_over_ten_at_most_in_aws_shape(
    mesh: Mesh,
) -> None:
    # GIVEN 24 snapshots waiting on every queue
    mesh.trueup("us-west-2")
    for _ in range(23):
        mesh.trueup("us-east-1")

    # WHEN the event source mappings run
    assert mesh.run_until_converged().converged

    # THEN each queue's messages went to its consumer in batches of at most ten, none lost: every
    # message published on any topic (the 24 snapshots, and what each region's empty table set off:
    # its resync request, and the answers that re-published the answering region's own source)
    messages = [
        json.loads(call.params["Message"])
        for invocation in mesh.invocations
        for call in invocation.calls
        if call.operation == "Publish"
    ]
    published = Counter(message["type"] for message in messages)
    assert published["sgmesh.membership-snapshot"] > 24
    assert published["sgmesh.resync-request"] == len(mesh.regions)
    for region in mesh.regions:
        batches = [invocation.event["Records"] for invocation in mesh.handled(region, "apply")]
        kinds = Counter(
            json.loads(json.loads(r["body"])["Message"])["type"] for batch in batches for r in batch
        )
        # acknowledgements go to the regions of the sources they name, the rest everywhere
        routed = Counter(
            message["type"]
            for message in messages
            if message["type"] != "sgmesh.acknowledgement"
            or region in {entry["source"]["region"] for entry in message["enforced"]}
        )
        assert kinds == routed
        assert max(len(batch) for batch in batches) == 10
        assert all(
            invocation.result == {"batchItemFailures": []} for invocation in mesh.handled(region, "apply")
        )
        assert mesh.mappings[region].depth() == 0

    # ... and every record has the shape of the SQS event AWS delivers (see tests/events); an
    # acknowledgement's envelope also carries its sources' regions, which the subscriptions filter on
    (expected,) = golden("sqs_snapshot_batch")["Records"]
    for invocation in mesh.handled("us-west-2", "apply"):
        for record in invocation.event["Records"]:
            body = json.loads(record["body"])
            body["MessageAttributes"].pop("source_regions", None)
            assert shape(record) == shape(expected)
            assert shape(body) == shape(json.loads(expected["body"]))
            assert record["eventSourceARN"] == mesh.stacks["us-west-2"].queue_arn


def test_given_a_poison_record_then_it_is_retried_after_each_visibility_timeout_and_dead_lettered(
    mesh: Mesh,
) -> None:
    # GIVEN a converged mesh, and a tampered message published straight to us-east-1's topic
    converge(mesh)
    west, stack = mesh.mappings["us-west-2"], mesh.stacks["us-west-2"]
    timeout = mesh.spec.visibility_timeout_seconds
    mesh.sns("us-east-1").publish(
        TopicArn=mesh.stacks["us-east-1"].topic_arn, Message=POISON, MessageAttributes=SNAPSHOT_ATTRIBUTES
    )
    poison_ids: set[str] = set()

    for receive in range(1, 6):
        # WHEN a good snapshot arrives with it and the mapping polls
        if receive > 1:
            mesh.clock.advance_to(west.next_release or 0)
            assert west.release_due() == 1
        (published,) = mesh.trueup("us-east-1")["published"]
        mesh.clock.advance_to(west.next_poll)
        assert west.poll() == 2

        # THEN the poison alone is reported failed, and the good record in its batch applied
        batch = mesh.handled("us-west-2", "apply")[-1]
        poison = [r for r in batch.event["Records"] if envelope_message(r) == POISON]
        assert len(poison) == 1
        assert poison[0]["attributes"]["ApproximateReceiveCount"] == str(receive)
        poison_ids.add(poison[0]["messageId"])
        assert batch.result == {"batchItemFailures": [{"itemIdentifier": poison[0]["messageId"]}]}
        assert stored_version(mesh, "us-west-2", "us-east-1") == published["version"]

        # ... and it stays invisible until the visibility timeout has passed
        assert west.next_release == batch.at + timeout
        mesh.clock.advance_to(batch.at + timeout - 1)
        assert west.release_due() == 0
        assert west.poll() == 0
        assert west.depth() == 1

    # WHEN it is visible again after its fifth receive
    mesh.clock.advance_to(west.next_release or 0)
    assert west.release_due() == 1
    (published,) = mesh.trueup("us-east-1")["published"]
    mesh.clock.advance_to(west.next_poll)
    assert west.poll() == 1

    # THEN SQS moved it to the dead-letter queue instead; the good record still applied
    assert len(poison_ids) == 1
    batch = mesh.handled("us-west-2", "apply")[-1]
    assert [envelope_message(r) != POISON for r in batch.event["Records"]] == [True]
    assert batch.result == {"batchItemFailures": []}
    assert stored_version(mesh, "us-west-2", "us-east-1") == published["version"]
    assert west.depth() == 0
    dead = mesh.sqs("us-west-2").receive_message(QueueUrl=stack.dlq_url, AttributeNames=["All"])["Messages"]
    assert [(m["MessageId"], json.loads(m["Body"])["Message"]) for m in dead] == [(poison_ids.pop(), POISON)]
    assert mesh.converged()


def test_given_a_cut_off_region_then_its_queue_keeps_deliveries_until_it_is_restored(mesh: Mesh) -> None:
    # GIVEN a converged mesh, with us-west-2 cut off
    converge(mesh)
    mesh.cut_off("us-west-2")
    west_before = mesh.managed_permissions("us-west-2")
    west_batches = len(mesh.handled("us-west-2", "apply"))

    # WHEN us-east-1 scales out
    (launched,) = mesh.scale("us-east-1", 3)
    address = f"{mesh.members('us-east-1')[launched]}/32"
    reachable = mesh.run_until_converged()

    # THEN the reachable region converged, while us-west-2 got nothing and its queue kept the snapshot
    assert reachable.converged
    assert address in mesh.managed_cidrs("us-east-1")
    assert mesh.managed_permissions("us-west-2") == west_before
    assert len(mesh.handled("us-west-2", "apply")) == west_batches
    mesh.clock.advance_to(mesh.mappings["us-west-2"].next_poll)
    assert mesh.mappings["us-west-2"].poll() == 0
    assert mesh.mappings["us-west-2"].depth() == 1

    # WHEN it is restored
    fired = mesh.schedule.fired
    mesh.restore("us-west-2")
    restored = mesh.run_until_converged()

    # THEN the kept delivery applies (no true-up needed) and it converges
    assert restored.converged
    assert mesh.schedule.fired == fired
    assert address in mesh.managed_cidrs("us-west-2")
    assert mesh.managed_permissions("us-west-2") == mesh.expected_permissions()
    assert mesh.mappings["us-west-2"].depth() == 0
