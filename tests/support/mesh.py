"""The tests' mesh: sgmesh's local runtime, with every invocation recorded and delivery by hand.

Stacks, clients, the call ledger and the lifecycle-hook emulation are sgmesh.local's own. This adds
what the tests assert on: each handler invocation with its event, simulated time and the calls it
made; an operator's rule on every group; and explicit delivery for the integration tests (no
simulated time passes unless a test moves the clock or runs the mesh, so no schedule, heartbeat
timeout or retry acts on its own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from sgmesh.local.clients import ApiCall
from sgmesh.local.esm import EventSourceMapping, sqs_event
from sgmesh.local.lifecycle import PendingAction
from sgmesh.local.mesh import DEFAULT_REGIONS, LocalMesh
from sgmesh.local.stack import ACCOUNT, RegionStack, StackSpec, create_table, subscribe

OPERATOR_RULE = ("tcp", 22, 22, "203.0.113.7/32")
# What the product's publisher sets on a snapshot (cloud.sns), which the subscriptions' filter policies
# read (a message without it passes as an older release's: tests/integration/test_mixed_releases.py).
SNAPSHOT_ATTRIBUTES: dict[str, Any] = {
    "type": {"DataType": "String", "StringValue": "sgmesh.membership-snapshot"}
}
TWO_REGIONS = ("us-east-1", "us-west-2")

AnyMesh = TypeVar("AnyMesh", bound=LocalMesh)


class Provisioner(Protocol):
    """Provisions a mesh on the test's clean embedded AWS (the `provisioned` fixture)."""

    def __call__(self, mesh: AnyMesh, instances_per_region: int = 2) -> AnyMesh: ...


@dataclass(frozen=True)
class Invocation:
    region: str
    handler: str
    event: dict[str, Any]
    at: float  # simulated time
    calls: tuple[ApiCall, ...]
    result: Any
    error: Exception | None = None

    def message_types(self) -> set[str]:
        """The `type` of every event an SQS batch of SNS envelopes carried (none for other events)."""
        return {
            json.loads(json.loads(record["body"])["Message"]).get("type", "")
            for record in self.event.get("Records", [])
            if "Message" in json.loads(record["body"])
        }

    def published_types(self) -> list[str]:
        """The `type` attribute of every event this invocation published, in order."""
        return [
            call.params["MessageAttributes"]["type"]["StringValue"]
            for call in self.calls
            if call.operation == "Publish"
        ]


class Mesh(LocalMesh):
    def __init__(
        self, endpoint: str, regions: tuple[str, ...] = DEFAULT_REGIONS, spec: StackSpec | None = None
    ) -> None:
        super().__init__(endpoint, regions, spec)
        self.invocations: list[Invocation] = []
        self._every_region = regions
        self._removed: dict[str, RegionStack] = {}

    def provision(self, instances_per_region: int = 2) -> Mesh:
        super().provision(instances_per_region)
        protocol, from_port, to_port, cidr = OPERATOR_RULE
        for region, stack in self.stacks.items():
            self.ec2(region).authorize_security_group_ingress(
                GroupId=stack.security_group_id,
                IpPermissions=[
                    {
                        "IpProtocol": protocol,
                        "FromPort": from_port,
                        "ToPort": to_port,
                        "IpRanges": [{"CidrIp": cidr, "Description": "operator bastion"}],
                    }
                ],
            )
        return self

    # -- the mesh's own life: what operators do to it over a year ------------------------------------

    def recreate_table(self, region: str) -> None:
        """The region's table deleted and created again, empty (the stack's own table, as it creates it)."""
        table = self.stacks[region].table_name
        self.dynamodb(region).delete_table(TableName=table)
        create_table(self.session, region, table)

    def remove_region(self, region: str) -> None:
        """`make deploy` without the region, then its stack deleted: the other regions' consumers stop
        accepting its topic and their queues unsubscribe from it; its functions and table are gone. Its
        Auto Scaling group and security group are the user's: they stay, instances running."""
        stack = self.stacks.pop(region)
        self._removed[region] = stack
        self.mappings.pop(region)
        self.buffers.pop(region, None)
        self.regions = tuple(r for r in self.regions if r != region)
        self._unsubscribe(stack)
        self._drain(stack)
        self.dynamodb(region).delete_table(TableName=stack.table_name)
        self._set_peers()

    def readd_region(self, region: str) -> None:
        """`make deploy` with the region again: a new stack (an empty table), subscribed to every topic,
        and every region's consumer accepting its topic again."""
        stack = self._removed.pop(region)
        create_table(self.session, region, stack.table_name)
        self.stacks[region] = stack
        self.regions = tuple(r for r in self._every_region if r in self.stacks)
        for other in self.stacks.values():
            self._subscribe(other, stack.topic_arn)
            if other is not stack:
                self._subscribe(stack, other.topic_arn)
        self.mappings[region] = self._mapping(region, stack)
        self._set_peers()

    def set_environment(self, **settings: str) -> None:
        """A deploy that changes settings in every region (a new `target`, say)."""
        for stack in self.stacks.values():
            stack.environment.update(settings)

    def _mapping(self, region: str, stack: RegionStack) -> EventSourceMapping:
        return EventSourceMapping(self.session, stack, self.spec, self.clock, partial(self.consume, region))

    def _set_peers(self) -> None:
        topics = ",".join(stack.topic_arn for stack in self.stacks.values())
        self.set_environment(SGMESH_PEER_TOPIC_ARNS=topics)

    def _subscribe(self, subscriber: RegionStack, topic_arn: str) -> None:
        topic_region = topic_arn.split(":")[3]
        subscribe(self.session, subscriber, topic_arn, self.stacks[topic_region].delivery_dlq_arn)

    def _unsubscribe(self, removed: RegionStack) -> None:
        """Every subscription of the removed region's queue, and every subscription to its topic."""
        for stack in [*self.stacks.values(), removed]:
            sns = self.sns(stack.region)
            for subscription in sns.list_subscriptions_by_topic(TopicArn=stack.topic_arn)["Subscriptions"]:
                if stack is removed or subscription["Endpoint"] == removed.queue_arn:
                    sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])

    # -- harness clients (not recorded: they play AWS and the operator, not the product) ----------

    def ec2(self, region: str) -> Any:
        return self.session.client("ec2", region_name=region)

    def autoscaling(self, region: str) -> Any:
        return self.session.client("autoscaling", region_name=region)

    def dynamodb(self, region: str) -> Any:
        return self.session.client("dynamodb", region_name=region)

    def sns(self, region: str) -> Any:
        return self.session.client("sns", region_name=region)

    def sqs(self, region: str) -> Any:
        return self.session.client("sqs", region_name=region)

    # -- the real handlers, each invocation recorded with the calls it made ---------------------

    def _recorded(
        self, region: str, handler: str, event: dict[str, Any], run: Callable[[dict[str, Any]], Any]
    ) -> Any:
        first, at = self.calls.mark(), self.clock.now
        try:
            result = run(event)
        except Exception as error:
            calls = tuple(self.calls.since(first))
            self.invocations.append(Invocation(region, handler, event, at, calls, None, error))
            raise
        self.invocations.append(
            Invocation(region, handler, event, at, tuple(self.calls.since(first)), result)
        )
        return result

    def handled(self, region: str, handler: str) -> list[Invocation]:
        return [i for i in self.invocations if (i.region, i.handler) == (region, handler)]

    def trueup(self, region: str, event: dict[str, Any] | None = None) -> Any:
        return self._recorded(region, "trueup", event or {}, partial(super().trueup, region))

    def consume(self, region: str, event: dict[str, Any]) -> Any:
        return self._recorded(region, "apply", event, partial(super().consume, region))

    def lifecycle(self, region: str, event: dict[str, Any]) -> Any:
        """Invoke the lifecycle producer with `event` (from the bus, or directly: the seed's true-up)."""
        return self._recorded(region, "lifecycle", event, partial(super().lifecycle, region))

    def deliver_lifecycle_events(self, region: str, events: int) -> None:
        """EventBridge delivers the due lifecycle events: onto the region's buffer, whose event source
        mapping hands them to the producer past its batching window (or straight to the producer)."""
        assert self.bus.dispatch_due() == events, f"{events} lifecycle event(s) due"
        if self.spec.lifecycle_buffer and region in self.buffers:
            mapping = self.buffers[region].mapping
            self.clock.advance_to(mapping.next_poll)
            assert mapping.poll() == events, f"{events} lifecycle event(s) buffered"

    def lifecycle_action(self, region: str, instance_id: str, *, launching: bool) -> PendingAction:
        """Auto Scaling holds the instance at its hook, EventBridge delivers the event and the producer
        gets it, now: through the region's lifecycle buffer (the clock moves past the buffer's batching
        window, at most a few seconds), or directly where the spec has no buffer.

        Raises what the producer raised when invoked directly (the bus then keeps the event for Lambda's
        async retries); a buffered batch reports its failed records instead (`invocations[-1].result`),
        which stay on the buffer until their visibility timeout.
        """
        stack = self.stacks[region]
        if launching:
            self.hooks.launched(stack, [instance_id])
        else:
            self.hooks.terminate(stack, [instance_id])
        action = next(a for a in self.hooks.pending.values() if a.instance_id == instance_id)
        delivered = len(self.invocations)
        self.deliver_lifecycle_events(region, 1)
        (invocation,) = self.invocations[delivered:]
        if invocation.error is not None:
            raise invocation.error
        return action

    def completion_calls(self) -> list[ApiCall]:
        """The CompleteLifecycleAction calls the product made, with the parameters it sent."""
        return [call for call in self.calls.calls if call.operation == "CompleteLifecycleAction"]

    # -- deliveries, by hand -----------------------------------------------------------------------

    def receive(self, region: str, max_messages: int = 10) -> list[dict[str, Any]]:
        return self._receive(self.stacks[region], max_messages)

    def _receive(self, stack: RegionStack, max_messages: int = 10) -> list[dict[str, Any]]:
        response = self.sqs(stack.region).receive_message(
            QueueUrl=stack.queue_url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            VisibilityTimeout=0,
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def drain(self, region: str) -> list[dict[str, Any]]:
        """Take every message off the region's queue (moto scans the whole queue: keep it shallow)."""
        return self._drain(self.stacks[region])

    def _drain(self, stack: RegionStack) -> list[dict[str, Any]]:
        taken: list[dict[str, Any]] = []
        while messages := self._receive(stack):
            taken.extend(messages)
            self.sqs(stack.region).delete_message_batch(
                QueueUrl=stack.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return taken

    def deliver(self, region: str, messages: list[dict[str, Any]]) -> Any:
        """Hand messages to the consumer as one SQS batch, as the event source mapping would."""
        stack = self.stacks[region]
        return self.consume(region, sqs_event(messages, queue_arn=stack.queue_arn, region=region))

    def settle(self) -> None:
        """Every region's event source mapping delivers all that is queued, round after round while
        applying brings more (acknowledgements go back to the sources' regions); no record may fail."""
        while True:
            handled = 0
            for region, mapping in self.mappings.items():
                failed = mapping.failed_records
                self.clock.advance_to(mapping.next_poll)  # past the batching window of the previous poll
                handled += mapping.poll()
                assert mapping.failed_records == failed, f"records failed in {region}"
            if not handled:
                break
        for region, mapping in self.mappings.items():
            assert mapping.depth() == 0, f"{region}'s queue is not empty"

    def queued_snapshots(self, region: str) -> list[dict[str, Any]]:
        """The snapshots waiting on the region's queue, left there (each look counts as a receive)."""
        return [json.loads(json.loads(message["Body"])["Message"]) for message in self.receive(region)]

    def delete_table(self, region: str) -> None:
        """The operator deletes the region's table (by mistake, or to start afresh)."""
        self.dynamodb(region).delete_table(TableName=self.stacks[region].table_name)

    def create_table(self, region: str) -> None:
        """The operator (or CloudFormation) creates the region's table again: empty."""
        create_table(self.session, region, self.stacks[region].table_name)

    def stored_version(self, region: str, source_region: str) -> int | None:
        """The version of `source_region`'s own group that `region`'s table holds (None: none)."""
        source = f"{ACCOUNT}/{source_region}/{self.stacks[source_region].group_name}"
        item = (
            self.dynamodb(region)
            .get_item(
                TableName=self.stacks[region].table_name,
                Key={"pk": {"S": f"state#{self.spec.cluster}"}, "sk": {"S": source}},
            )
            .get("Item")
        )
        return int(item["version"]["N"]) if item else None

    # -- the truth, observed independently of the product ----------------------------------------

    def product_lifecycle_states(self, region: str) -> dict[str, str]:
        """instance id -> LifecycleState, as the product's own Auto Scaling client is told."""
        (group,) = self.factory.autoscaling(region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.stacks[region].group_name]
        )["AutoScalingGroups"]
        return {instance["InstanceId"]: instance["LifecycleState"] for instance in group["Instances"]}

    def instance_state(self, region: str, instance_id: str) -> str:
        """The instance's state in EC2 (moto): pending, running, shutting-down, terminated..."""
        (reservation,) = self.ec2(region).describe_instances(InstanceIds=[instance_id])["Reservations"]
        state: str = reservation["Instances"][0]["State"]["Name"]
        return state

    def managed_cidrs(self, region: str) -> set[str]:
        return {cidr for *_ports, cidr in self.managed_permissions(region)}

    def has_operator_rule(self, region: str) -> bool:
        return any(
            (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule.get("CidrIpv4")) == OPERATOR_RULE
            for rule in self.ingress(region)
        )

    def assert_converged(self) -> None:
        expected = self.expected_permissions()
        for region in self.regions:
            assert self.managed_permissions(region) == expected, f"{region} has not converged"
            assert self.has_operator_rule(region), f"{region} lost the operator's rule"

    def cross_region_writes(self) -> list[tuple[str, str, ApiCall]]:
        """Mutating calls any handler made to a region other than its own (must stay empty)."""
        return [
            (invocation.region, invocation.handler, call)
            for invocation in self.invocations
            for call in invocation.calls
            if call.mutating and call.region != invocation.region
        ]
