"""A local multi-region sgmesh: the stacks on the embedded AWS, the product's handlers, and the
emulated parts of AWS, driven by simulated time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TextIO

from cloud.sns_certificates import install_certificate_source
from consumers import apply
from producers import lifecycle, trueup
from schemas.rules import Permission as RulePermission
from schemas.settings import AddressMode, PortSpec, TargetMode
from sgmesh.local.buffer import LifecycleBuffer, create_buffer
from sgmesh.local.clients import CallLedger, ExtendedClientFactory
from sgmesh.local.clock import SimClock
from sgmesh.local.delays import DelayedMessages
from sgmesh.local.embedded import EndpointSession
from sgmesh.local.esm import EventSourceMapping
from sgmesh.local.eventbridge import EventBus, scheduled_event
from sgmesh.local.functions import Binding, invoke
from sgmesh.local.lifecycle import LifecycleHooks
from sgmesh.local.prefix_lists import PrefixListChecks
from sgmesh.local.schedule import Schedule
from sgmesh.local.sns_certificates import install_local_certificates
from sgmesh.local.stack import ACCOUNT, RegionStack, StackSpec, provision_region, subscribe_to_peers
from sgmesh.meshfile import MeshFile, RegionEntry

DEFAULT_REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
Permission = tuple[str, int, int, str]


@dataclass(frozen=True)
class Convergence:
    converged: bool
    sim_seconds: float
    wall_seconds: float
    api_calls: int


class LocalMesh:
    """The mesh on the embedded AWS at `endpoint`: every client, the product's and the emulations', is
    built from one session bound to that endpoint, so nothing here reads or changes the environment."""

    def __init__(
        self, endpoint: str, regions: tuple[str, ...] = DEFAULT_REGIONS, spec: StackSpec | None = None
    ) -> None:
        self.endpoint = endpoint
        self.regions = regions
        self.spec = spec or StackSpec()
        self.session = EndpointSession(endpoint)
        self.clock = SimClock()
        self.calls = CallLedger()
        self.bus = EventBus(self.clock, self._route)
        self.hooks = LifecycleHooks(self.session, self.clock, self.bus, self.spec)
        self.prefix_lists = PrefixListChecks()
        self.delays = DelayedMessages(self.session, self.clock)
        self.factory = ExtendedClientFactory(
            self.session, self.calls, self.hooks, self.prefix_lists, self.delays
        )
        self.stacks: dict[str, RegionStack] = {}
        self.mappings: dict[str, EventSourceMapping] = {}
        self.buffers: dict[str, LifecycleBuffer] = {}
        self.schedule = Schedule(self.clock, self.spec.trueup_interval_seconds, self.scheduled_trueup)
        self._own_clients: dict[tuple[str, str], Any] = {}
        # Where the functions' EMF metric lines go (Lambda ships them to CloudWatch); none: dropped.
        self.metrics: TextIO | None = None

    def provision(self, instances_per_region: int = 2) -> LocalMesh:
        """Create every region's stack (the embedded AWS must be running) and trust its SNS certificates."""
        install_local_certificates(self.endpoint)
        for region in self.regions:
            self.stacks[region] = provision_region(self.session, region, self.spec, instances_per_region)
        subscribe_to_peers(self.session, list(self.stacks.values()), self.spec)
        for region, stack in self.stacks.items():
            self.mappings[region] = EventSourceMapping(
                self.session, stack, self.spec, self.clock, partial(self.consume, region)
            )
            # The buffer also carries the admission barrier's own messages, where launches wait for it.
            if self.spec.lifecycle_buffer or self.spec.admission_barrier:
                buffer = create_buffer(self.session, stack, self.spec)
                self.buffers[region] = LifecycleBuffer(
                    self.session, stack, self.spec, self.clock, partial(self.lifecycle, region), buffer
                )
                if self.spec.admission_barrier:
                    stack.environment["SGMESH_ADMISSION_QUEUE_URL"] = buffer.url
        return self

    def close(self) -> None:
        """Uninstall this mesh's certificates: they come from an embedded AWS about to stop."""
        install_certificate_source(None)

    # -- the functions ------------------------------------------------------------------------------

    def trueup(self, region: str, event: dict[str, Any] | None = None) -> Any:
        return self._invoke(trueup.bind, "trueup", region, event or {})

    def trueup_everywhere(self) -> None:
        """Every region's true-up, now and in order (what `sgmesh trueup` does)."""
        for region in self.regions:
            self.trueup(region)

    def scheduled_trueup(self) -> None:
        """What the schedule does: an independent asynchronous invocation in each region."""
        rule = f"{self.spec.name}-trueup"
        for region in self.regions:
            self.bus.put(region, scheduled_event(account=ACCOUNT, region=region, rule=rule))

    def consume(self, region: str, event: dict[str, Any]) -> Any:
        return self._invoke(apply.bind, "apply", region, event)

    def lifecycle(self, region: str, event: dict[str, Any]) -> Any:
        return self._invoke(lifecycle.bind, "lifecycle", region, event)

    def _invoke(self, bind: Binding, function: str, region: str, event: dict[str, Any]) -> Any:
        """The function as the region's stack deploys it: its environment, and this mesh's clients."""
        name = f"{self.spec.name}-{function}"
        return invoke(bind, name, self.stacks[region].environment, self.factory, event, self.metrics)

    def _route(self, region: str, event: dict[str, Any]) -> Any:
        """EventBridge's rules: the schedule targets the true-up, lifecycle actions the producer (or,
        where lifecycle events are buffered, its queue)."""
        if event.get("detail-type") == "Scheduled Event":
            return self.trueup(region, event)
        if self.spec.lifecycle_buffer and region in self.buffers:
            self.buffers[region].put(event)
            return None
        return self.lifecycle(region, event)

    # -- what happens to the cluster --------------------------------------------------------------

    def scale(self, region: str, desired: int) -> list[str]:
        """Set the group's size as Auto Scaling would, lifecycle hooks included; return changed ids."""
        stack = self.stacks[region]
        current = sorted(self.members(region))
        if desired > len(current):
            before = set(self._group_instances(region))
            self._own_client("autoscaling", region).set_desired_capacity(
                AutoScalingGroupName=stack.group_name, DesiredCapacity=desired
            )
            launched = sorted(set(self._group_instances(region)) - before)
            self.hooks.launched(stack, launched)
            return launched
        leaving = current[: len(current) - desired]
        self.hooks.terminate(stack, leaving)
        return leaving

    def add_group(self, region: str, name: str, instances: int) -> list[str]:
        """The user creates another Auto Scaling group in the region, from the region's launch template,
        and names it in the stack's SGMESH_ASG_NAMES; returns its instance ids."""
        stack = self.stacks[region]
        autoscaling = self._own_client("autoscaling", region)
        (main,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[stack.group_name])[
            "AutoScalingGroups"
        ]
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateName": stack.group_name},
            MinSize=0,
            MaxSize=50,
            DesiredCapacity=instances,
            VPCZoneIdentifier=main["VPCZoneIdentifier"],
        )
        stack.environment["SGMESH_ASG_NAMES"] = ",".join([*self.group_names(region), name])
        return self._group_instances(region, name)

    def drop_group(self, region: str, name: str) -> None:
        """The stack is deployed again without the group in SGMESH_ASG_NAMES; its instances keep running."""
        stack = self.stacks[region]
        stack.environment["SGMESH_ASG_NAMES"] = ",".join(n for n in self.group_names(region) if n != name)

    def group_names(self, region: str) -> tuple[str, ...]:
        """The groups the region's stack names (SGMESH_ASG_NAMES): the cluster's members there."""
        return tuple(name for name in self.stacks[region].environment["SGMESH_ASG_NAMES"].split(",") if name)

    def terminate_by_hand(self, region: str) -> str:
        """An operator terminates an instance in EC2: no lifecycle event, only the true-up sees it."""
        victim = sorted(self.members(region))[0]
        self._own_client("ec2", region).terminate_instances(InstanceIds=[victim])
        return victim

    def keep_by_hand(self, region: str, instance_id: str) -> int:
        """An operator keeps a member's rules by hand in the region's group, as before sgmesh: each
        managed rule of the instance replaced by the same rule with the operator's own description.
        Returns how many."""
        ec2 = self._own_client("ec2", region)
        group_id = self.stacks[region].security_group_id
        rules = [
            rule for rule in self.ingress(region) if rule.get("Description", "").endswith(f"/{instance_id}")
        ]
        ec2.revoke_security_group_ingress(
            GroupId=group_id, SecurityGroupRuleIds=[rule["SecurityGroupRuleId"] for rule in rules]
        )
        ec2.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[
                {
                    "IpProtocol": rule["IpProtocol"],
                    "FromPort": rule["FromPort"],
                    "ToPort": rule["ToPort"],
                    "IpRanges": [
                        {"CidrIp": rule["CidrIpv4"], "Description": "cassandra node (kept by hand)"}
                    ],
                }
                for rule in rules
            ],
        )
        return len(rules)

    def cut_off(self, region: str) -> None:
        """The region stops receiving deliveries (its queue keeps them, as SNS retries would)."""
        self.mappings[region].paused = True

    def restore(self, region: str) -> None:
        self.mappings[region].paused = False

    # -- running ------------------------------------------------------------------------------------

    def step(self) -> int:
        """Let every emulated part act once at the current time; return how much happened."""
        activity = (
            self.schedule.fire_due()
            + self.bus.dispatch_due()
            + self.hooks.expire_due()
            + self.delays.release_due()
        )
        for mapping in self._all_mappings():
            activity += mapping.release_due() + mapping.poll()
        return activity

    def run_until_converged(
        self, max_sim_seconds: float = 3600, on_progress: Callable[[], None] | None = None
    ) -> Convergence:
        """Run until every reachable region matches the truth and nothing is in flight, or until
        `max_sim_seconds` of simulated time have passed."""
        started_wall, started_sim, first_call = time.perf_counter(), self.clock.now, self.calls.mark()
        deadline = started_sim + max_sim_seconds
        while True:
            if on_progress is not None:
                on_progress()
            if self.step():
                continue
            visible, in_flight = self._queued()
            busy = visible or in_flight or self.bus.next_due is not None or self.hooks.pending
            settled = not busy and self.converged()
            if settled or self.clock.now >= deadline:
                break
            # Poll again only for visible messages; otherwise only a timer can change anything.
            self.clock.advance_to(min(self._next_moment(include_polls=visible > 0), deadline))
        return Convergence(
            converged=settled or self.converged(),
            sim_seconds=self.clock.now - started_sim,
            wall_seconds=time.perf_counter() - started_wall,
            api_calls=len(self.calls.since(first_call)),
        )

    def run_for(self, sim_seconds: float) -> None:
        """Let `sim_seconds` of simulated time pass, every emulated part acting when due, converged or
        not (a region may be cut off, or deliveries lost, on purpose)."""
        deadline = self.clock.now + sim_seconds
        while True:
            while self.step():
                pass
            if self.clock.now >= deadline:
                return
            visible, _in_flight = self._queued()
            self.clock.advance_to(min(self._next_moment(include_polls=visible > 0), deadline))

    def _all_mappings(self) -> list[EventSourceMapping]:
        """The consumers' mappings and, where lifecycle events are buffered, the producers'."""
        return [*self.mappings.values(), *(buffer.mapping for buffer in self.buffers.values())]

    def _queued(self) -> tuple[int, int]:
        """Messages (visible, in flight) on the queues of the regions that are not cut off."""
        counts = [mapping.queued() for mapping in self._all_mappings() if not mapping.paused]
        return sum(visible for visible, _ in counts), sum(in_flight for _, in_flight in counts)

    def _next_moment(self, *, include_polls: bool) -> float:
        candidates = [
            self.bus.next_due,
            self.hooks.next_deadline,
            self.schedule.next_due,
            self.delays.next_due,
        ]
        for mapping in self._all_mappings():
            candidates += [
                mapping.next_release,
                mapping.next_poll if include_polls and not mapping.paused else None,
            ]
        future = [moment for moment in candidates if moment is not None and moment > self.clock.now]
        return min(future, default=self.clock.now + 1)

    def run_realtime(self, duration_seconds: float | None, *, speed: float = 1.0, tick: float = 0.5) -> None:
        """Run with simulated time following the wall clock (x `speed`) until `duration_seconds` pass."""
        started, base = time.monotonic(), self.clock.now
        while duration_seconds is None or time.monotonic() - started < duration_seconds:
            while self.step():
                pass
            time.sleep(tick)
            self.clock.advance_to(base + (time.monotonic() - started) * speed)

    def mesh_file(self, endpoint_url: str | None) -> MeshFile:
        """The operator's mesh file for this local mesh."""
        return MeshFile(
            cluster=self.spec.cluster,
            ports=tuple(PortSpec.parse(spec) for spec in self.spec.ports.split(",")),
            address=AddressMode(self.spec.address),
            target=TargetMode(self.spec.target),
            rule_quota=self.spec.rule_quota,
            endpoint_url=endpoint_url,
            regions={
                region: RegionEntry(
                    table=stack.table_name,
                    topic_arn=stack.topic_arn,
                    asg_names=self.group_names(region),
                    security_group_ids=(stack.security_group_id,),
                    queue_url=stack.queue_url,
                    delivery_dead_letter_queue_url=stack.delivery_dlq_url,
                    lifecycle_buffer_url=stack.buffer_url or None,
                    observe=stack.environment.get("SGMESH_OBSERVE") == "true",
                )
                for region, stack in self.stacks.items()
            },
        )

    # -- the truth, observed from AWS independently of sgmesh's tables ---------------------------

    def _own_client(self, service: str, region: str) -> Any:
        """The mesh's own client (it plays Auto Scaling and the operator, so no call is recorded),
        built once: building an EC2 client costs more than the calls a convergence check makes."""
        key = (service, region)
        if key not in self._own_clients:
            self._own_clients[key] = self.session.client(service, region_name=region)
        return self._own_clients[key]

    def _group_instances(self, region: str, group: str | None = None) -> list[str]:
        """The instances of one group: the region's own (the one `scale` changes) unless named."""
        (found,) = self._own_client("autoscaling", region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[group or self.stacks[region].group_name]
        )["AutoScalingGroups"]
        return [instance["InstanceId"] for instance in found["Instances"]]

    def members(self, region: str) -> dict[str, str]:
        """instance id -> public IP of every running instance of the group that is not leaving."""
        ids = [i for i in self._group_instances(region) if self.hooks.waiting_state(i) != "Terminating:Wait"]
        if not ids:
            return {}
        reservations = self._own_client("ec2", region).describe_instances(InstanceIds=ids)["Reservations"]
        return {
            instance["InstanceId"]: instance["PublicIpAddress"]
            for reservation in reservations
            for instance in reservation["Instances"]
            if instance["State"]["Name"] == "running" and instance.get("PublicIpAddress")
        }

    def member_addresses(self, region: str) -> dict[str, tuple[str, ...]]:
        """instance id -> every address (as a CIDR) the address mode admits, for the members of every
        group the region's settings name (a group they no longer name is no part of the cluster)."""
        ids = [
            instance_id
            for group in self.group_names(region)
            for instance_id in self._group_instances(region, group)
            if self.hooks.waiting_state(instance_id) != "Terminating:Wait"
        ]
        if not ids:
            return {}
        reservations = self._own_client("ec2", region).describe_instances(InstanceIds=ids)["Reservations"]
        mode = AddressMode(self.spec.address)
        found = {}
        for reservation in reservations:
            for instance in reservation["Instances"]:
                if instance["State"]["Name"] != "running":
                    continue
                public, private = instance.get("PublicIpAddress"), instance.get("PrivateIpAddress")
                ipv6 = [
                    f"{address['Ipv6Address']}/128"
                    for interface in instance.get("NetworkInterfaces", [])
                    for address in interface.get("Ipv6Addresses", [])
                ]
                admitted = mode.pick(public and f"{public}/32", private and f"{private}/32", ipv6)
                if admitted:
                    found[instance["InstanceId"]] = admitted
        return found

    def expected_permissions(self) -> set[Permission]:
        """(every admitted address of every member of every region) x (the configured ports)."""
        ports = [PortSpec.parse(spec) for spec in self.spec.ports.split(",")]
        cidrs = {
            cidr
            for region in self.regions
            for addresses in self.member_addresses(region).values()
            for cidr in addresses
        }
        rules = (RulePermission.for_spec(port, cidr) for port in ports for cidr in cidrs)
        return {(r.protocol, r.from_port, r.to_port, r.cidr) for r in rules if r is not None}

    def ingress(self, region: str) -> list[dict[str, Any]]:
        group_id = self.stacks[region].security_group_id
        rules: Any = self._own_client("ec2", region).describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group_id]}]
        )["SecurityGroupRules"]
        return [rule for rule in rules if not rule["IsEgress"]]

    def managed_permissions(self, region: str) -> set[Permission]:
        marker = f"sgmesh:{self.spec.cluster}"
        rules = (
            RulePermission.described(
                rule["IpProtocol"],
                rule.get("FromPort"),
                rule.get("ToPort"),
                rule.get("CidrIpv4") or rule["CidrIpv6"],
            )
            for rule in self.ingress(region)
            if rule.get("Description", "").split(" ")[0] == marker
            and (rule.get("CidrIpv4") or rule.get("CidrIpv6"))
        )
        return {(r.protocol, r.from_port, r.to_port, r.cidr) for r in rules}

    def converged(self) -> bool:
        """Every reachable region's managed rules equal the truth."""
        expected = self.expected_permissions()
        return all(
            self.managed_permissions(region) == expected
            for region, mapping in self.mappings.items()
            if not mapping.paused
        )
