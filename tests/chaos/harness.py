"""The chaos mesh (the tests' mesh with every fault of tests/chaos/faults.py wired in) and the report
each scenario returns: lost members, extra rules, convergence, retries, and broken invariants."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from schemas.errors import InvalidRecordError
from schemas.events import parse_snapshot
from sgmesh.local.mesh import DEFAULT_REGIONS
from sgmesh.local.stack import RegionStack, StackSpec
from tests.chaos.faults import DeliveryFaults, Faults, FaultyEventSourceMapping, HandlerCrash
from tests.support.mesh import Mesh

Result = TypeVar("Result")
Versions = dict[tuple[str, str], int]  # (region, source) -> stored version


class FunctionCrashed(Exception):
    """What Lambda reports when the function's process died: an invocation error, nothing returned."""


class ChaosMesh(Mesh):
    def __init__(
        self,
        endpoint: str,
        regions: tuple[str, ...] = DEFAULT_REGIONS,
        spec: StackSpec | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(endpoint, regions, spec)
        self.seed = seed
        self.faults = Faults(self.clock, seed)
        self.factory.extend(self.faults)
        self.delivery = DeliveryFaults()  # shared by every region's mapping; change it in place

    def provision(self, instances_per_region: int = 2) -> ChaosMesh:
        super().provision(instances_per_region)
        for region, stack in self.stacks.items():
            self.mappings[region] = self._mapping(region, stack)
        return self

    def _mapping(self, region: str, stack: RegionStack) -> FaultyEventSourceMapping:
        return FaultyEventSourceMapping(
            self.session,
            stack,
            self.spec,
            self.clock,
            partial(self.consume, region),
            self.delivery,
            self.seed + self.regions.index(region),
        )

    def faulty_mappings(self) -> list[FaultyEventSourceMapping]:
        return [m for m in self.mappings.values() if isinstance(m, FaultyEventSourceMapping)]

    def _as_lambda(self, region: str, function: str, run: Callable[[], Result]) -> Result:
        with self.faults.invocation(region, function), self.faults.instant_backoff():
            try:
                return run()
            except HandlerCrash as crash:
                raise FunctionCrashed(str(crash)) from crash

    def trueup(self, region: str, event: dict[str, Any] | None = None) -> Any:
        return self._as_lambda(region, "trueup", partial(super().trueup, region, event))

    def consume(self, region: str, event: dict[str, Any]) -> Any:
        return self._as_lambda(region, "apply", partial(super().consume, region, event))

    def lifecycle(self, region: str, event: dict[str, Any]) -> Any:
        return self._as_lambda(region, "lifecycle", partial(super().lifecycle, region, event))

    def _route(self, region: str, event: dict[str, Any]) -> Any:
        # An unreachable region's EventBridge and Lambda are down with it: its events never run.
        if self.faults.unreachable(region):
            return None
        return super()._route(region, event)

    # -- observations ------------------------------------------------------------------------------

    def stored_versions(self) -> Versions:
        versions: Versions = {}
        for region, stack in self.stacks.items():
            items = self.dynamodb(region).query(
                TableName=stack.table_name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"state#{self.spec.cluster}"}},
            )["Items"]
            for item in items:
                versions[(region, item["sk"]["S"])] = int(item["version"]["N"])
        return versions

    def received_versions(self) -> Versions:
        """The newest version of each source that each region's consumer was handed (valid records)."""
        newest: Versions = {}
        for invocation in self.invocations:
            if invocation.handler != "apply":
                continue
            for record in invocation.event["Records"]:
                try:
                    snapshot = parse_snapshot(json.loads(record["body"])["Message"])
                except (ValueError, KeyError, InvalidRecordError):  # poison: never applied
                    continue
                key = (invocation.region, snapshot.source.key)
                newest[key] = max(newest.get(key, 0), snapshot.version)
        return newest

    def dead_letters(self) -> int:
        """Messages in every region's consumer DLQ and lifecycle buffer DLQ, plus producer events that
        exhausted their asynchronous retries."""
        queues = [(region, stack.dlq_url) for region, stack in self.stacks.items()]
        queues += [(region, buffer.queue.dlq_url) for region, buffer in self.buffers.items()]
        depth = 0
        for region, url in queues:
            attributes = self.sqs(region).get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            depth += int(attributes["ApproximateNumberOfMessages"])
        return depth + len(self.bus.failed)

    def events_delivered(self) -> int:
        return sum(len(i.event["Records"]) for i in self.invocations if i.handler == "apply")


@dataclass
class Report:
    scenario: str
    faults: str
    events: int = 0
    lost_members: int = 0
    extra_rules: int = 0
    converged: bool = False
    api_retries: int = 0
    redeliveries: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.converged and not self.lost_members and not self.extra_rules and not self.violations


class VersionWatch:
    """Samples every region's stored versions and notes any that went backwards."""

    def __init__(self, mesh: ChaosMesh) -> None:
        self._mesh = mesh
        self._seen: Versions = {}
        self.violations: list[str] = []

    def sample(self) -> None:
        for key, version in self._mesh.stored_versions().items():
            if version < self._seen.get(key, 0):
                self.violations.append(f"{key} went back from {self._seen[key]} to {version}")
            self._seen[key] = max(version, self._seen.get(key, 0))


def measure(
    mesh: ChaosMesh,
    scenario: str,
    faults: str,
    *,
    converged: bool,
    violations: list[str],
    dead_letters: int = 0,
) -> Report:
    """Compare every region's managed rules with the truth, and check what every scenario must keep:
    the operator's rules, and no dead letter but the `dead_letters` expected."""
    expected = mesh.expected_permissions()
    expected_cidrs = {cidr for *_ports, cidr in expected}
    report = Report(scenario, faults, events=mesh.events_delivered(), converged=converged)
    report.violations.extend(violations)
    for region in mesh.regions:
        managed = mesh.managed_permissions(region)
        report.lost_members += len(expected_cidrs - {cidr for *_ports, cidr in managed})
        report.extra_rules += len(managed - expected)
        if not mesh.has_operator_rule(region):
            report.violations.append(f"{region} lost the operator's rule")
    dead = mesh.dead_letters()
    if dead != dead_letters:
        report.violations.append(f"{dead} dead letters, {dead_letters} expected")
    report.api_retries = mesh.faults.retries
    report.redeliveries = sum(mapping.failed_records for mapping in mesh.mappings.values())
    return report
