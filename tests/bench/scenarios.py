"""The benchmark's scenarios: each runs sgmesh and, where it has one, the blog baseline on the same
embedded AWS with the same call ledger, and returns what was counted and timed."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from unittest import mock
from uuid import UUID

import requests
from moto.ec2.exceptions import RulesPerSecurityGroupLimitExceededError
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.utils import random_public_ip
from moto.servicequotas.models import ServiceQuotasBackend

from cloud.dynamodb import Table
from cloud.service_quotas import RULES_PER_GROUP
from consumers.reconcile import desired_rules, plan_group
from schemas.admission import AdmissionStatus
from schemas.events import Cause, CauseKind, Member, MembershipSnapshot, Source
from schemas.rules import InboundRule
from schemas.settings import AddressMode, PortSpec
from sgmesh.local.clients import ApiCall
from sgmesh.local.mesh import DEFAULT_REGIONS, Convergence, LocalMesh
from sgmesh.local.stack import ACCOUNT, StackSpec
from tests.bench.baseline import BaselineMesh
from tests.fakes import largest_snapshot
from tests.support.mesh import TWO_REGIONS, Mesh

# AWS's highest inbound-rule quota per group: the larger clusters below need a raised quota, and moto
# hard-codes the default of 60.
RAISED_RULE_QUOTA = 1000
# No scheduled true-up fires during a measurement: it would add calls that no scenario asked for.
NO_SCHEDULE_SECONDS = 10**9
STORM_SIZES = (10, 25, 50, 100)
CLUSTER_SIZES = (2, 10, 100, 500)
HANDLER_MODULES = ("producers.lifecycle", "producers.trueup", "consumers.apply")
# What no handler uses, so importing it would only cost cold-start time. Powertools' own package
# __init__ imports its tracing and metrics modules whatever is used; the X-Ray SDK behind the Tracer
# is the costly part, and it loads only when a Tracer is created.
UNUSED_POWERTOOLS = (
    "aws_xray_sdk",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.feature_flags",
    "aws_lambda_powertools.utilities.validation",
    "aws_lambda_powertools.utilities.data_masking",
    "aws_lambda_powertools.utilities.streaming",
)


class BenchMesh(Mesh):
    """The tests' recorded mesh without the operator's rule, so both sides start from the same groups."""

    def provision(self, instances_per_region: int = 2) -> BenchMesh:
        LocalMesh.provision(self, instances_per_region)
        return self


def bench_spec(
    ports: str = "tcp:7000-7001,tcp:9042", *, buffered: bool = True, barrier: bool = False
) -> StackSpec:
    return StackSpec(
        ports=ports,
        rule_quota=RAISED_RULE_QUOTA,
        trueup_interval_seconds=NO_SCHEDULE_SECONDS,
        lifecycle_buffer=buffered,
        admission_barrier=barrier,
    )


@contextmanager
def raised_rule_quota(limit: int = RAISED_RULE_QUOTA) -> Iterator[None]:
    """moto enforces 60 rules per group; an account can have its quota raised to 1000."""

    def verify(
        _backend: Any, _group: Any, current: int, ip_ranges: list[str], source_groups: Any = None, **_: Any
    ) -> None:
        if current + len(ip_ranges or []) + len(source_groups or []) > limit:
            raise RulesPerSecurityGroupLimitExceededError

    read_quota = ServiceQuotasBackend.get_service_quota

    def applied_quota(backend: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        # The raise shows in Service Quotas too, where the consumer reads its rule budget.
        quota = read_quota(backend, service_code, quota_code)
        return quota | {"Value": float(limit)} if quota_code == RULES_PER_GROUP else quota

    with (
        mock.patch.object(SecurityGroupBackend, "_verify_group_will_respect_rule_count_limit", verify),
        mock.patch.object(ServiceQuotasBackend, "get_service_quota", applied_quota),
    ):
        yield


@contextmanager
def distinct_public_ips() -> Iterator[None]:
    """moto draws each public address at random from 65,025, so with hundreds of instances two often
    share one, and a launch whose address is already admitted changes no rule (at 1,000 instances, one
    run in about 65: the baseline's count for one change fell by 2). AWS gives no address to two
    running instances."""
    issued: set[str] = set()

    def unused() -> str:
        address = random_public_ip()
        while address in issued:
            address = random_public_ip()
        issued.add(address)
        return address

    with mock.patch("moto.ec2.models.elastic_network_interfaces.random_public_ip", unused):
        yield


@contextmanager
def bench_account(endpoint: str) -> Iterator[None]:
    """A reset embedded AWS as the bench's account sees it: a raised rule quota, distinct addresses."""
    with raised_rule_quota(), distinct_public_ips():
        reset(endpoint)
        yield


def reset(endpoint: str) -> None:
    requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()


def resize(mesh: LocalMesh, region: str, size: int) -> None:
    """Set a group's size directly in moto (setup, not a lifecycle event), its maximum raised to fit."""
    mesh.session.client("autoscaling", region_name=region).update_auto_scaling_group(
        AutoScalingGroupName=mesh.stacks[region].group_name,
        MaxSize=max(size, RAISED_RULE_QUOTA),
        DesiredCapacity=size,
    )


def _start(mesh: BenchMesh | BaselineMesh, sizes: dict[str, int]) -> None:
    """Provision empty groups, size them, and converge with a true-up in every region."""
    mesh.provision(0)
    for region, size in sizes.items():
        resize(mesh, region, size)
    mesh.trueup_everywhere()
    if isinstance(mesh, BenchMesh):
        assert mesh.run_until_converged().converged, "the cluster did not converge before the measurement"


def _mutating_ec2(calls: list[ApiCall], regions: tuple[str, ...]) -> int:
    return sum(1 for call in calls if call.service == "ec2" and call.mutating and call.region in regions)


# -- scenario 1: one membership change at N members per region ----------------------------------


@dataclass(frozen=True)
class ChangeCost:
    members_per_region: int
    sgmesh_per_region: dict[str, int]
    baseline_total: int
    baseline_remote_writes: int


def one_change(endpoint: str, members: int) -> ChangeCost:
    """Two regions with one port (so that 500 members per region fit a 1000-rule quota); us-east-1
    launches its N-th instance."""
    return ChangeCost(members, sgmesh_change(endpoint, members), *baseline_change(endpoint, members))


def _change_sizes(members: int) -> dict[str, int]:
    return {TWO_REGIONS[0]: members - 1, TWO_REGIONS[1]: members}


def sgmesh_change(endpoint: str, members: int) -> dict[str, int]:
    """sgmesh's calls per region for the launch of the N-th member."""
    with bench_account(endpoint):
        sgmesh = BenchMesh(endpoint, TWO_REGIONS, bench_spec(ports="tcp:9042"))
        _start(sgmesh, _change_sizes(members))
        mark = sgmesh.calls.mark()
        sgmesh.scale(TWO_REGIONS[0], members)
        assert sgmesh.run_until_converged().converged
        per_region = Counter(call.region for call in sgmesh.calls.since(mark))
        assert not sgmesh.cross_region_writes()
        sgmesh.close()
    return {region: per_region[region] for region in TWO_REGIONS}


def baseline_change(endpoint: str, members: int) -> tuple[int, int]:
    """The blog model's calls for the launch of the N-th member: (in total, writes into the other region)."""
    with bench_account(endpoint):
        baseline = BaselineMesh(endpoint, TWO_REGIONS, bench_spec(ports="tcp:9042"))
        _start(baseline, _change_sizes(members))
        mark = baseline.calls.mark()
        baseline.scale(TWO_REGIONS[0], members)
        baseline.bus.dispatch_due()
        calls = baseline.calls.since(mark)
        baseline.close()
    return len(calls), sum(1 for call in calls if call.mutating and call.region != TWO_REGIONS[0])


# -- scenario 2: a storm of launches in one region ----------------------------------------------


@dataclass(frozen=True)
class SgmeshStorm:
    total: int
    cross_region_writes: int
    ec2_mutating_in_baseline_regions: int
    max_grants_per_batch: int  # Authorize + Revoke calls in any one consumer invocation
    sim_seconds: float
    # Simulated seconds from a launch (the instance at its hook) to its CONTINUE, at most.
    max_seconds_to_continue: float = 0.0
    # Launches completed at the admission timeout instead (none unless a region is silent).
    admission_timeouts: int = 0


@dataclass(frozen=True)
class BaselineStorm:
    total: int
    describe_instances: int
    ec2_mutating: int
    cross_region_writes: int


@dataclass(frozen=True)
class StormCost:
    size: int
    arrival: str  # "jump": 0 to M at once; "one-by-one": each launch handled before the next
    buffered: bool  # lifecycle events reach sgmesh's producer through the buffering queue
    sgmesh: SgmeshStorm
    baseline: BaselineStorm  # measured apart: the blog's function has no buffer, whatever `buffered` says
    barrier: bool = False  # launches wait for every region's acknowledgement (as deployed)

    @property
    def ratio(self) -> float:
        return self.baseline.total / self.sgmesh.total


def storm(
    endpoint: str, size: int, *, one_by_one: bool, buffered: bool = True, barrier: bool = False
) -> StormCost:
    """us-east-1 grows from 0 to `size` (the others have 2 each): sgmesh on 3 regions, the baseline
    on the 2 it supports."""
    return StormCost(
        size,
        arrival(one_by_one=one_by_one),
        buffered,
        sgmesh_storm(endpoint, size, one_by_one=one_by_one, buffered=buffered, barrier=barrier),
        baseline_storm(endpoint, size, one_by_one=one_by_one),
        barrier,
    )


def arrival(*, one_by_one: bool) -> str:
    return "one-by-one" if one_by_one else "jump"


def _storm_steps(size: int, *, one_by_one: bool) -> list[int]:
    return list(range(1, size + 1)) if one_by_one else [size]


def sgmesh_storm(
    endpoint: str, size: int, *, one_by_one: bool, buffered: bool, barrier: bool = False
) -> SgmeshStorm:
    """sgmesh's side of a storm, each step run until every region converged and every launch was
    completed; with the admission barrier, until the launches' timers have fired too (their calls
    count)."""
    launching = DEFAULT_REGIONS[0]
    with bench_account(endpoint):
        spec = bench_spec(buffered=buffered, barrier=barrier)
        sgmesh = BenchMesh(endpoint, DEFAULT_REGIONS, spec)
        _start(sgmesh, {launching: 0, **dict.fromkeys(DEFAULT_REGIONS[1:], 2)})
        mark, first_invocation, started = sgmesh.calls.mark(), len(sgmesh.invocations), sgmesh.clock.now
        first_completion = len(sgmesh.hooks.completions)
        for step in _storm_steps(size, one_by_one=one_by_one):
            sgmesh.scale(launching, step)
            assert sgmesh.run_until_converged().converged
        if barrier:
            sgmesh.run_for(spec.admission_timeout_seconds + spec.buffer_batching_window_seconds + 1)
            assert not sgmesh.delays.held, "admission timers still pending"
        completions = sgmesh.hooks.completions[first_completion:]
        assert len(completions) == size, "a launch was not completed"
        assert not any(completion.by_timeout for completion in completions), "a hook timed out"
        calls = sgmesh.calls.since(mark)
        grants = [
            sum(1 for call in invocation.calls if call.operation.endswith("SecurityGroupIngress"))
            for invocation in sgmesh.invocations[first_invocation:]
            if invocation.handler == "apply"
        ]
        storm = SgmeshStorm(
            total=len(calls),
            cross_region_writes=len(sgmesh.cross_region_writes()),
            ec2_mutating_in_baseline_regions=_mutating_ec2(calls, TWO_REGIONS),
            max_grants_per_batch=max(grants, default=0),
            sim_seconds=sgmesh.clock.now - started,
            max_seconds_to_continue=max(completion.waited for completion in completions),
            admission_timeouts=_timed_out(sgmesh, launching) if barrier else 0,
        )
        sgmesh.close()
    return storm


def _timed_out(mesh: Mesh, region: str) -> int:
    """Launches the region completed at the admission timeout (read with the harness's own client)."""
    table = Table(mesh.dynamodb(region), mesh.stacks[region].table_name)
    return sum(1 for a in table.admissions(mesh.spec.cluster) if a.status is AdmissionStatus.TIMED_OUT)


def baseline_storm(endpoint: str, size: int, *, one_by_one: bool) -> BaselineStorm:
    """The blog model's side of a storm, each step's lifecycle events handled before the next."""
    launching = DEFAULT_REGIONS[0]
    with bench_account(endpoint):
        baseline = BaselineMesh(endpoint, TWO_REGIONS, bench_spec())
        _start(baseline, {launching: 0, TWO_REGIONS[1]: 2})
        mark = baseline.calls.mark()
        for step in _storm_steps(size, one_by_one=one_by_one):
            baseline.scale(launching, step)
            baseline.bus.dispatch_due()
        calls = baseline.calls.since(mark)
        baseline.close()
    return BaselineStorm(
        total=len(calls),
        describe_instances=sum(1 for call in calls if call.operation == "DescribeInstances"),
        ec2_mutating=_mutating_ec2(calls, TWO_REGIONS),
        cross_region_writes=sum(1 for call in calls if call.mutating and call.region != launching),
    )


# -- scenario 3: the pure reconcile plan ---------------------------------------------------------


def _members(count: int) -> tuple[Member, ...]:
    # Public addresses (11.0.0.0/8 is neither reserved nor private), as the public mode requires.
    return tuple(
        Member(instance_id=f"i-{index:017x}", public_ipv4=f"11.0.{index // 250}.{index % 250 + 1}/32")
        for index in range(count)
    )


def snapshot_of(count: int) -> MembershipSnapshot:
    return MembershipSnapshot(
        cluster="demo",
        source=Source(account=ACCOUNT, region="us-east-1", group="sgmesh-demo-us-east-1"),
        version=1,
        cause=Cause(kind=CauseKind.TRUEUP),
        members=_members(count),
        event_id=UUID(int=1),
        produced_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def plan_cpu_seconds(
    members: int = 1000, ports: str = "tcp:7000-7001,tcp:9042,udp:7002", runs: int = 15
) -> float:
    """Median CPU time of desired rules + plan for a group holding half of them, half stale."""
    specs = [PortSpec.parse(spec) for spec in ports.split(",")]
    snapshot = snapshot_of(members)
    desired = desired_rules("demo", [snapshot], specs, AddressMode.PUBLIC)
    half = list(desired.values())[: len(desired) // 2]
    existing = [InboundRule(f"sgr-{i}", rule.allows, rule.description) for i, rule in enumerate(half)]
    timings = []
    for _ in range(runs):
        started = time.process_time()
        plan_group("sg-1", "demo", desired_rules("demo", [snapshot], specs, AddressMode.PUBLIC), existing)
        timings.append(time.process_time() - started)
    return statistics.median(timings)


# -- scenario 4: cold-start proxy ----------------------------------------------------------------


def import_seconds(module: str) -> float:
    """Cumulative import time of `module` in a fresh interpreter, from `-X importtime`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stderr.splitlines():
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        if name.strip() == module:
            return int(cumulative) / 1e6
    raise AssertionError(f"no import time for {module}")


def imported_modules(module: str) -> set[str]:
    """sys.modules after importing `module` in a fresh interpreter."""
    script = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout))


def unused_powertools(module: str) -> list[str]:
    loaded = imported_modules(module)
    return sorted(name for name in loaded if name.startswith(UNUSED_POWERTOOLS))


# -- scenario 5: end to end ----------------------------------------------------------------------


def end_to_end(endpoint: str, launches: int = 5) -> list[Convergence]:
    """One launch at a time in us-east-1, each from the scale event until every region converged."""
    reset(endpoint)
    mesh = BenchMesh(endpoint, DEFAULT_REGIONS, bench_spec())
    _start(mesh, dict.fromkeys(DEFAULT_REGIONS, 2))
    results = []
    for size in range(3, 3 + launches):
        mesh.scale(DEFAULT_REGIONS[0], size)
        results.append(mesh.run_until_converged())
    mesh.close()
    return results


# -- scenario 6: message size --------------------------------------------------------------------


def snapshot_bytes(members: int = 1000) -> int:
    """The published message (the snapshot as the producer sends it) in bytes, at its widest: every
    member with every field and 4 IPv6 addresses (tests.fakes.largest_snapshot)."""
    return len(largest_snapshot(members).to_json().encode())
