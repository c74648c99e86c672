"""The chaos scenarios: each injects its faults into a provisioned mesh, lets it run, and reports.

`size` scales each scenario: make test runs them small, make chaos large.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from schemas.events import ACKNOWLEDGEMENT_TYPE, SNAPSHOT_TYPE
from sgmesh.local.stack import StackSpec
from tests.chaos.faults import FaultKind
from tests.chaos.harness import ChaosMesh, Report, VersionWatch, measure
from tests.support.mesh import TWO_REGIONS

EAST, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"
HOUR = 3600.0


def start(mesh: ChaosMesh) -> None:
    """The first true-up everywhere, fault-free: every scenario starts from a converged mesh."""
    mesh.trueup_everywhere()
    assert mesh.run_until_converged().converged, "the mesh did not converge before any fault"


def region_outage(mesh: ChaosMesh, size: int) -> Report:
    """(a) eu-west-1 is unreachable for `size` hours while the others scale; then it comes back."""
    start(mesh)
    watch = VersionWatch(mesh)
    watch.sample()
    outage = size * HOUR
    mesh.faults.outage(EU, mesh.clock.now, mesh.clock.now + outage)
    mesh.cut_off(EU)  # SNS keeps retrying its deliveries; its queue holds them
    for round_ in range(size):
        mesh.scale(EAST, 2 + (round_ % 3) + 1)
        mesh.scale(WEST, 1 + round_ % 2)
        mesh.run_for(outage / size)
        watch.sample()
    mesh.restore(EU)
    outcome = mesh.run_until_converged(max_sim_seconds=mesh.spec.trueup_interval_seconds)
    watch.sample()
    return measure(
        mesh,
        "a. region unreachable",
        f"{EU} down {size} h, {size} scalings",
        converged=outcome.converged,
        violations=watch.violations,
    )


def crash_points(mesh: ChaosMesh, size: int) -> Report:
    """(b) the consumer, then the lifecycle producer, dies before each of its AWS calls in turn,
    scaling out (Authorize) and in (Revoke) by turns; `size` rounds of every point."""
    start(mesh)
    violations: list[str] = []
    crashes = 0

    def flip() -> bool:
        """Scale the west out to 3 or back in to 2; True if it scaled out."""
        out = len(mesh.members(WEST)) < 3
        mesh.scale(WEST, 3 if out else 2)
        return out

    for function in ("apply", "lifecycle"):
        # Fault-free changes first, to learn how many calls an invocation makes each way.
        calls: dict[bool, int] = {}
        for _ in range(2):
            handled = len(mesh.handled(WEST, function))
            out = flip()
            assert mesh.run_until_converged().converged
            calls[out] = max(len(i.calls) for i in mesh.handled(WEST, function)[handled:])
        points = {out: [p for _ in range(size) for p in range(count)] for out, count in calls.items()}
        while points[True] or points[False]:
            out = len(mesh.members(WEST)) < 3
            point = points[out].pop(0) if points[out] else None  # None: a fault-free change back
            if point is not None:
                mesh.faults.crash(WEST, function, point)
                crashes += 1
            flip()
            if not mesh.run_until_converged().converged:
                violations.append(f"{function} crashed before call #{point}: no convergence")
            if mesh.faults.injected["crash"] != crashes:
                violations.append(f"{function} never reached call #{point}")
    return measure(
        mesh,
        "b. handler crash at every call",
        f"{crashes} crashes (consumer, producer)",
        converged=mesh.converged(),
        violations=violations,
    )


@dataclass(frozen=True)
class Schedule:
    """One delivery schedule: what the network does, and how the cluster changes meanwhile."""

    seed: int
    loss: float
    duplication: float
    delay: float
    shuffle: bool
    scalings: tuple[tuple[str, int], ...]


def random_schedule(rng: random.Random, regions: tuple[str, ...]) -> Schedule:
    return Schedule(
        seed=rng.randrange(2**16),
        loss=rng.choice([0.0, 0.2, 0.5]),
        duplication=rng.choice([0.0, 0.3, 1.0]),
        delay=rng.choice([0.0, 0.3, 0.7]),
        shuffle=rng.random() < 0.5,
        scalings=tuple((rng.choice(regions), rng.randint(1, 4)) for _ in range(rng.randint(1, 3))),
    )


def run_schedule(mesh: ChaosMesh, schedule: Schedule) -> list[str]:
    """(c) Under the schedule's faults, each region keeps the newest snapshot it was handed of every
    source; then a fault-free true-up repairs what was lost. Returns the broken invariants."""
    violations: list[str] = []
    faults = mesh.delivery
    faults.loss, faults.duplication, faults.delay, faults.shuffle = (
        schedule.loss,
        schedule.duplication,
        schedule.delay,
        schedule.shuffle,
    )
    for mapping in mesh.faulty_mappings():
        mapping.reseed(schedule.seed)
    for region, size in schedule.scalings:
        mesh.scale(region, size)
        mesh.run_for(30)
    # Long enough for every held-back message and every failed record to come back, and short of
    # the scheduled true-up, which would repair losses before they are looked at.
    mesh.run_for(2 * mesh.spec.visibility_timeout_seconds)
    stored, received = mesh.stored_versions(), mesh.received_versions()
    violations += [
        f"{key} stored v{stored.get(key)} but was handed v{version}"
        for key, version in received.items()
        if stored.get(key) != version
    ]
    faults.loss = faults.duplication = faults.delay = 0.0
    mesh.trueup_everywhere()
    if not mesh.run_until_converged().converged:
        violations.append(f"no convergence after the true-up that follows {schedule}")
    return violations


def delivery_schedules(mesh: ChaosMesh, size: int) -> Report:
    """(c) `size` random schedules of loss, duplication (x1..x5) and reordering, one after another."""
    start(mesh)
    rng = random.Random(mesh.seed)  # noqa: S311 - reproducible schedules, not secrets
    violations: list[str] = []
    for _ in range(size):
        violations += run_schedule(mesh, random_schedule(rng, mesh.regions))
    lost = sum(m.lost for m in mesh.faulty_mappings())
    copies = sum(m.duplicated for m in mesh.faulty_mappings())
    delayed = sum(m.delayed for m in mesh.faulty_mappings())
    return measure(
        mesh,
        "c. loss, duplication, reordering",
        f"{size} schedules: {lost} lost, {copies} copies, {delayed} delayed",
        converged=mesh.converged(),
        violations=violations,
    )


def throttling(mesh: ChaosMesh, size: int) -> Report:
    """(e) RequestLimitExceeded on consecutive calls: fewer than botocore's attempts are retried
    within the invocation; more fail the batch, and SQS retries the records (none is dropped)."""
    start(mesh)
    violations: list[str] = []
    attempts = 6  # cloud/clients.py: standard mode, max_attempts 5 retries after the first attempt
    for consecutive in (attempts - 1, attempts * 2):
        for _ in range(size):
            mesh.faults.inject(
                FaultKind.THROTTLE,
                region=WEST,
                operation="ec2:AuthorizeSecurityGroupIngress",
                times=consecutive,
            )
            mesh.faults.inject(
                FaultKind.THROTTLE, region=EAST, operation="dynamodb:PutItem", times=consecutive
            )
            mesh.scale(EAST, len(mesh.members(EAST)) + 1)
            if not mesh.run_until_converged().converged:
                violations.append(f"{consecutive} throttles in a row: no convergence")
    if mesh.faults.backoff_seconds > mesh.spec.consumer_timeout_seconds * 2 * size:
        violations.append(f"backoff of {mesh.faults.backoff_seconds:.0f} s exceeds the functions' time")
    return measure(
        mesh,
        "e. RequestLimitExceeded in a row",
        f"{mesh.faults.injected['throttle']} throttles (runs of {attempts - 1} and {attempts * 2})",
        converged=mesh.converged(),
        violations=violations,
    )


def poison_batch(mesh: ChaosMesh, size: int) -> Report:
    """(f) `size` poison records among 10: exactly those fail, and reach the DLQ after
    maxReceiveCount; the others apply."""
    start(mesh)
    violations: list[str] = []
    poison = [
        "{not json",
        json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:999999999999:forged"}),
        json.dumps({"Type": "Notification", "TopicArn": mesh.stacks[EAST].topic_arn, "Message": "{}"}),
    ]
    mesh.drain(WEST)
    for _ in range(10 - size):
        mesh.trueup(EAST)
    poison_ids = {
        mesh.sqs(WEST).send_message(
            QueueUrl=mesh.stacks[WEST].queue_url, MessageBody=poison[i % len(poison)]
        )["MessageId"]
        for i in range(size)
    }
    first = len(mesh.handled(WEST, "apply"))
    outcome = mesh.run_until_converged()
    batches = mesh.handled(WEST, "apply")[first:]
    if len(batches[0].event["Records"]) != 10:
        violations.append(f"the first batch held {len(batches[0].event['Records'])} records, not 10")
    for batch in batches:
        failed = {failure["itemIdentifier"] for failure in batch.result["batchItemFailures"]}
        handed = {record["messageId"] for record in batch.event["Records"]}
        if failed != handed & poison_ids:
            violations.append(f"failed {sorted(failed)}, poison {sorted(handed & poison_ids)}")
    receives = sum(1 for batch in batches if poison_ids & {r["messageId"] for r in batch.event["Records"]})
    if receives != mesh.spec.max_receive_count:
        violations.append(
            f"poison handed over {receives} times, maxReceiveCount is {mesh.spec.max_receive_count}"
        )
    stored, received = mesh.stored_versions(), mesh.received_versions()
    if stored != received:
        violations.append(f"stored {stored} but handed {received}")
    return measure(
        mesh,
        "f. poison records in a batch of 10",
        f"{size} poison + {10 - size} good",
        converged=outcome.converged,
        violations=violations,
        dead_letters=size,
    )


def leaving_by_hand(mesh: ChaosMesh, size: int) -> Report:
    """(h) instances terminated by hand and stopped/started (new public IP): no lifecycle event, so
    the scheduled true-up catches them."""
    start(mesh)
    mesh.scale(EAST, 2 + size)
    assert mesh.run_until_converged().converged
    violations: list[str] = []
    for _ in range(size):
        mesh.terminate_by_hand(EAST)
        moved = sorted(mesh.members(WEST))[0]
        mesh.ec2(WEST).stop_instances(InstanceIds=[moved])
        mesh.ec2(WEST).start_instances(InstanceIds=[moved])
        if mesh.converged():
            violations.append("the change was invisible: the scenario tests nothing")
        outcome = mesh.run_until_converged(max_sim_seconds=mesh.spec.trueup_interval_seconds + 60)
        if not outcome.converged:
            violations.append("the next true-up did not catch the hand-made change")
    return measure(
        mesh,
        "h. left by hand, new public IP",
        f"{size} terminated + {size} stop/start",
        converged=mesh.converged(),
        violations=violations,
    )


def group_retired(mesh: ChaosMesh, size: int) -> Report:
    """`size` times, us-east-1 names a second group (admitted everywhere), then is deployed without it
    while its instances keep running and a third of the deliveries are lost, and the other regions
    scale: the region's true-ups retire it everywhere, a lost retirement repaired by the next one."""
    start(mesh)
    violations: list[str] = []
    retired: list[str] = []
    for round_ in range(size):
        group = f"{mesh.spec.name}-retiring-{round_}"
        extra = mesh.add_group(EAST, group, instances=2)
        mesh.trueup(EAST)
        if not mesh.run_until_converged().converged:
            violations.append(f"{group} was not admitted while named")
        mesh.drop_group(EAST, group)
        # Snapshots are lost, as before acknowledgements existed: losing those is scenario n's subject.
        mesh.delivery.only_types = frozenset({SNAPSHOT_TYPE})
        mesh.delivery.loss = 0.3
        mesh.scale(WEST, 2 + round_ % 2)
        mesh.scale(EU, 3 - round_ % 2)
        outcome = mesh.run_until_converged(max_sim_seconds=4 * mesh.spec.trueup_interval_seconds)
        mesh.delivery.loss = 0.0
        if not outcome.converged:
            violations.append(f"{group}'s members still admitted after 4 true-up periods")
        if {mesh.instance_state(EAST, instance) for instance in extra} != {"running"}:
            violations.append(f"{group}'s instances stopped running: the scenario tests nothing")
        retired += extra
    lost = sum(m.lost for m in mesh.faulty_mappings())
    return measure(
        mesh,
        "i. group retired",
        f"{size} groups of 2 running instances retired, {lost} deliveries lost",
        converged=mesh.converged(),
        violations=violations,
    )


def table_recreated(mesh: ChaosMesh, size: int) -> Report:
    """`size` times, while us-east-1 and us-west-2 keep scaling, us-east-1's table is deleted (its
    lifecycle events and deliveries fail meanwhile, and are retried) and created again a minute later:
    its next changes apply everywhere, none is dropped as stale, no stored version goes back."""
    start(mesh)
    watch = VersionWatch(mesh)
    violations: list[str] = []
    for round_ in range(size):
        for step in range(3):  # load: a version per change, and the other regions apply each
            mesh.scale(EAST, 2 + (round_ + step) % 3)
            mesh.scale(WEST, 1 + step % 2)
            mesh.run_for(30)
        watch.sample()
        mesh.delete_table(EAST)
        mesh.scale(EAST, 2 + (round_ + 1) % 2)
        mesh.run_for(60)
        mesh.create_table(EAST)
        mesh.scale(WEST, 3)
        outcome = mesh.run_until_converged(max_sim_seconds=2 * mesh.spec.trueup_interval_seconds)
        watch.sample()
        if not outcome.converged:
            violations.append(f"round {round_}: no convergence within two true-up periods")
    return measure(
        mesh,
        "j. table recreated under load",
        f"{size} tables deleted and recreated while scaling",
        converged=mesh.converged(),
        violations=violations + watch.violations,
    )


class Interleave:
    """A ClientExtension: right after the product's next `operation` call in `region` returns, runs
    `meanwhile` (another invocation of a function, racing this one between its read and its write)."""

    def __init__(self, region: str, operation: str) -> None:
        self.region = region
        self.operation = operation
        self.meanwhile: Callable[[], object] | None = None
        self.fired = 0

    def register(self, client: Any) -> None:
        if client.meta.region_name != self.region:
            return
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"after-call.{service}", self._after)

    def _after(self, model: Any, **_: Any) -> None:
        if (
            self.meanwhile is None
            or f"{model.service_model.service_id.hyphenize()}:{model.name}" != self.operation
        ):
            return
        meanwhile, self.meanwhile = self.meanwhile, None
        self.fired += 1
        meanwhile()


def racing_writers(mesh: ChaosMesh, size: int) -> Report:
    """(d) two producers race in one region (the second describes a newer membership and commits
    between the first's describe and its version claim), and two consumers race on one group."""
    producers = Interleave(EAST, "auto-scaling:DescribeAutoScalingGroups")
    consumers = Interleave(WEST, "ec2:DescribeSecurityGroupRules")
    mesh.factory.extend(producers)  # before any product client exists: extensions apply to new ones
    mesh.factory.extend(consumers)
    start(mesh)
    violations: list[str] = []
    for round_ in range(size):
        mesh.scale(EAST, 3)
        assert mesh.run_until_converged().converged
        # The first true-up describes three members; meanwhile one leaves and a second true-up
        # describes two and commits first.
        producers.meanwhile = lambda: (mesh.terminate_by_hand(EAST), mesh.trueup(EAST))
        mesh.trueup(EAST)
        mesh.run_until_converged(max_sim_seconds=60)  # short of the schedule: no repair from it
        if not mesh.converged():
            violations.append(f"round {round_}: the stale describe won the producers' race")
        # Two snapshots for the west: one consumer applies each, the second between the first's read
        # of the group and its writes.
        mesh.cut_off(WEST)  # its queue keeps both snapshots for the race
        mesh.scale(EAST, len(mesh.members(EAST)) + 1)
        mesh.scale(WEST, 3 if len(mesh.members(WEST)) < 3 else 2)
        mesh.run_for(mesh.spec.batching_window_seconds)
        messages = mesh.drain(WEST)
        assert len(messages) >= 2, "a snapshot from each region"
        first, second = messages[:1], messages[1:]
        consumers.meanwhile = partial(mesh.deliver, WEST, second)
        results = [mesh.deliver(WEST, first)]
        results += [i.result for i in mesh.handled(WEST, "apply")[-2:]]
        mesh.restore(WEST)
        if any(result is None or result["batchItemFailures"] for result in results):
            violations.append(f"round {round_}: a racing consumer failed its batch: {results}")
        if not mesh.run_until_converged(max_sim_seconds=60).converged:
            violations.append(f"round {round_}: the consumers' race left the group wrong")
    if producers.fired != size or consumers.fired != size:
        violations.append(f"races run: producers {producers.fired}, consumers {consumers.fired} of {size}")
    return measure(
        mesh,
        "d. racing producers, racing consumers",
        f"{size} producer races + {size} consumer races",
        converged=mesh.converged(),
        violations=violations,
    )


def lifecycle_completion(mesh: ChaosMesh, size: int) -> Report:
    """(g) CompleteLifecycleAction fails (the buffered event is received again), or keeps failing until
    the hook expires (DefaultResult); and a launch is never ABANDONed because another region is down."""
    start(mesh)
    violations: list[str] = []
    expired = 0
    for round_ in range(size):
        # Fails one whole batch (the emulated call gets no botocore retry), then succeeds when the
        # event comes back after the buffer's visibility timeout.
        mesh.faults.inject(
            FaultKind.SERVER_ERROR, region=EAST, operation="auto-scaling:CompleteLifecycleAction", times=1
        )
        (launched,) = mesh.scale(EAST, len(mesh.members(EAST)) + 1)
        mesh.run_until_converged()
        (completion,) = [c for c in mesh.hooks.completions if c.instance_id == launched]
        if completion.by_timeout or completion.result != "CONTINUE":
            violations.append(f"round {round_}: a failed completion was not retried: {completion}")
        # Fails every receive of the event: the hook expires; the event goes to the buffer's DLQ.
        mesh.faults.inject(
            FaultKind.SERVER_ERROR, region=EAST, operation="auto-scaling:CompleteLifecycleAction", times=10**6
        )
        (launched,) = mesh.scale(EAST, len(mesh.members(EAST)) + 1)
        outcome = mesh.run_until_converged(
            max_sim_seconds=mesh.spec.heartbeat_timeout_seconds + mesh.spec.trueup_interval_seconds
        )
        mesh.faults.clear()
        expired += 1
        (completion,) = [c for c in mesh.hooks.completions if c.instance_id == launched]
        if not completion.by_timeout or not outcome.converged:
            violations.append(f"round {round_}: expired hook {completion}, converged {outcome.converged}")
    # eu-west-1 is unreachable while us-east-1 launches: the launch completes all the same.
    mesh.faults.outage(EU, mesh.clock.now, mesh.clock.now + HOUR)
    mesh.cut_off(EU)
    (launched,) = mesh.scale(EAST, len(mesh.members(EAST)) + 1)
    mesh.run_for(mesh.spec.batching_window_seconds)
    (completion,) = [c for c in mesh.hooks.completions if c.instance_id == launched]
    if (completion.result, completion.by_timeout) != ("CONTINUE", False):
        violations.append(f"a launch waited on an unreachable region: {completion}")
    mesh.run_for(HOUR)
    mesh.restore(EU)
    outcome = mesh.run_until_converged()
    return measure(
        mesh,
        "g. lifecycle completion fails, expires",
        f"{size} failed + {expired} expired completions, {EU} down",
        converged=outcome.converged,
        violations=violations,
        dead_letters=expired,
    )


class AdmissionWatch:
    """Samples every region's admitted addresses and notes any member that lost admission while still a
    member (a newcomer not admitted yet is not lost), and any leaver still admitted once its region's
    snapshots have all been applied."""

    def __init__(self, mesh: ChaosMesh) -> None:
        self._mesh = mesh
        self._admitted: dict[str, set[str]] = {}
        self.violations: list[str] = []

    def sample(self) -> None:
        members = {cidr for *_ports, cidr in self._mesh.expected_permissions()}
        for region in self._mesh.regions:
            now = {cidr for *_ports, cidr in self._mesh.managed_permissions(region)}
            dropped = (self._admitted.get(region, set()) & members) - now
            if dropped:
                self.violations.append(f"{region} dropped members {sorted(dropped)}")
            self._admitted[region] = now

    def leavers_gone(self, leavers: set[str]) -> None:
        for region in self._mesh.regions:
            kept = leavers & {cidr for *_ports, cidr in self._mesh.managed_permissions(region)}
            if kept:
                self.violations.append(f"{region} kept leavers {sorted(kept)}")


def addresses(mesh: ChaosMesh, region: str) -> set[str]:
    return {f"{ip}/32" for ip in mesh.members(region).values()}


def region_readded(mesh: ChaosMesh, size: int) -> Report:
    """(k) eu-west-1 is removed from the mesh (its instances keep running), the others scale, and it
    is deployed again with an empty table, `size` times: at the first reconcile after each removal no
    region admits its members; re-added, it catches up through its resync request within minutes, not a
    true-up period, and no member loses admission meanwhile."""
    start(mesh)
    watch = AdmissionWatch(mesh)
    violations = watch.violations
    for round_ in range(size):
        removed = addresses(mesh, EU)
        mesh.remove_region(EU)
        mesh.trueup(EAST)
        mesh.settle()
        watch.leavers_gone(removed)
        watch.sample()
        mesh.scale(WEST, 1 + (round_ + 1) % 3)
        mesh.run_until_converged(on_progress=watch.sample)
        mesh.readd_region(EU)
        mesh.trueup(EU)
        outcome = mesh.run_until_converged(
            max_sim_seconds=mesh.spec.trueup_interval_seconds - 60, on_progress=watch.sample
        )
        if not outcome.converged:
            violations.append(f"round {round_}: re-added {EU} needed a true-up period to catch up")
    return measure(
        mesh,
        "k. region removed and re-added",
        f"{EU} removed and re-added {size} times, {size} scalings",
        converged=mesh.converged(),
        violations=violations,
    )


def consumer_table_recreated(mesh: ChaosMesh, size: int) -> Report:
    """(l) us-west-2's table is deleted and created again while the others scale, `size` times: no
    member loses admission anywhere, leavers go, and the table catches up through its resync request."""
    start(mesh)
    watch = AdmissionWatch(mesh)
    for round_ in range(size):
        mesh.recreate_table(WEST)
        before = addresses(mesh, EAST)
        mesh.scale(EAST, 1 + (round_ + 2) % 4)
        outcome = mesh.run_until_converged(
            max_sim_seconds=mesh.spec.trueup_interval_seconds - 60, on_progress=watch.sample
        )
        watch.leavers_gone(before - addresses(mesh, EAST))
        if not outcome.converged:
            watch.violations.append(f"round {round_}: {WEST} needed a true-up period to catch up")
    return measure(
        mesh,
        "l. consumer table recreated",
        f"{WEST}'s table recreated {size} times, {size} scalings",
        converged=mesh.converged(),
        violations=watch.violations,
    )


# The operator's rule and 6 members on 2 port specs fill a group exactly.
TIGHT_QUOTA = 13


def quota_pressure(mesh: ChaosMesh, size: int) -> Report:
    """(m) A rule quota that holds 6 members; in each of `size` rounds us-east-1 grows past it while
    us-west-2 loses a member, then both shrink back: leavers go everywhere at once, admitted members are
    never dropped for newcomers, and no group passes the quota at any write."""
    mesh.set_environment(SGMESH_RULE_QUOTA=str(TIGHT_QUOTA))
    start(mesh)
    watch = AdmissionWatch(mesh)
    first = mesh.calls.mark()
    for round_ in range(size):
        west = addresses(mesh, WEST)
        mesh.scale(EAST, 4 + round_ % 2)
        mesh.scale(WEST, 1)
        mesh.run_for(2 * mesh.spec.visibility_timeout_seconds)
        watch.sample()
        watch.leavers_gone(west - addresses(mesh, WEST))
        mesh.scale(EAST, 2)
        mesh.scale(WEST, 2)
        mesh.run_until_converged(on_progress=watch.sample)
    over = [
        f"{call.params['GroupId']} at {count} rules"
        for call, count in group_sizes(mesh, mesh.calls.since(first))
        if count > TIGHT_QUOTA
    ]
    return measure(
        mesh,
        "m. quota pressure with churn",
        f"{size} rounds past a {TIGHT_QUOTA}-rule quota, {size} leavers",
        converged=mesh.converged(),
        violations=watch.violations + over,
    )


def group_sizes(mesh: ChaosMesh, calls: list[Any]) -> list[tuple[Any, int]]:
    """Each product write to a security group, with the group's inbound rules once it is done."""
    sizes = {stack.security_group_id: len(mesh.ingress(region)) for region, stack in mesh.stacks.items()}
    # Replayed from the writes: start from the sizes the writes explain backwards.
    writes = [
        c for c in calls if c.operation.endswith("SecurityGroupIngress") and c.params["GroupId"] in sizes
    ]
    for call in reversed(writes):
        sizes[call.params["GroupId"]] -= _delta(call)
    result = []
    for call in writes:
        sizes[call.params["GroupId"]] += _delta(call)
        result.append((call, sizes[call.params["GroupId"]]))
    return result


def _delta(call: Any) -> int:
    if call.operation == "RevokeSecurityGroupIngress":
        return -len(call.params["SecurityGroupRuleIds"])
    return sum(
        len(p.get("IpRanges", [])) + len(p.get("Ipv6Ranges", [])) for p in call.params["IpPermissions"]
    )


class EarlyCompletions:
    """Checks every CompleteLifecycleAction of a launch as the product sends it: before the launch's
    admission timeout, every region must already admit the instance (its address in each group)."""

    def __init__(self, mesh: ChaosMesh) -> None:
        self._mesh = mesh
        self.checked = 0
        self.at_timeout = 0
        self.violations: list[str] = []

    def register(self, client: Any) -> None:
        if client.meta.service_model.service_id.hyphenize() == "auto-scaling":
            client.meta.events.register(
                "before-parameter-build.auto-scaling.CompleteLifecycleAction", self._check
            )

    def _check(self, params: dict[str, Any], **_: Any) -> None:
        action = self._mesh.hooks.pending.get(params.get("LifecycleActionToken", ""))
        if action is None or not action.launching:
            return  # no longer pending (a second completion is harmless), or a termination
        self.checked += 1
        if self._mesh.clock.now - action.held_at >= self._mesh.spec.admission_timeout_seconds:
            self.at_timeout += 1
            return
        address = f"{self._mesh.members(action.region)[action.instance_id]}/32"
        missing = [
            region
            for region in self._mesh.regions
            if address not in {cidr for *_ports, cidr in self._mesh.managed_permissions(region)}
        ]
        if missing:
            self.violations.append(f"{action.instance_id} completed early: {missing} did not admit it")


def acknowledgements_lossy(mesh: ChaosMesh, size: int) -> Report:
    """(n) acknowledgements lost, duplicated and delayed (snapshots delivered as usual), launches waiting
    for the admission barrier: no launch is completed before every region admits it unless its admission
    timeout has passed, and none is lost: each is completed by sgmesh, with CONTINUE, before its hook's
    heartbeat."""
    start(mesh)
    guard = EarlyCompletions(mesh)
    mesh.factory.extend(guard)
    guard.register(mesh.factory.autoscaling(EAST))  # the producer's client, built already
    mesh.delivery.only_types = frozenset({ACKNOWLEDGEMENT_TYPE})
    mesh.delivery.loss, mesh.delivery.duplication, mesh.delivery.delay = 0.3, 0.3, 0.3
    launched: list[str] = []
    for round_ in range(2 * size):
        for mapping in mesh.faulty_mappings():
            mapping.reseed(mesh.seed + round_)
        launched += mesh.scale(EAST, len(mesh.members(EAST)) + 1 + round_ % 2)
        mesh.run_for(mesh.spec.admission_timeout_seconds + 2 * mesh.spec.batching_window_seconds)
    mesh.delivery.loss = mesh.delivery.duplication = mesh.delivery.delay = 0.0
    outcome = mesh.run_until_converged()
    violations = list(guard.violations)
    for instance_id in launched:
        completions = [c for c in mesh.hooks.completions if c.instance_id == instance_id]
        if [(c.result, c.by_timeout) for c in completions] != [("CONTINUE", False)]:
            violations.append(f"launch {instance_id} lost or completed otherwise: {completions}")
    lost = sum(mapping.lost for mapping in mesh.faulty_mappings())
    copied = sum(mapping.duplicated for mapping in mesh.faulty_mappings())
    return measure(
        mesh,
        "n. acknowledgements lost, duplicated, delayed",
        f"{len(launched)} launches: {lost} acks lost, {copied} copied; "
        f"{guard.at_timeout} completed at the timeout",
        converged=outcome.converged,
        violations=violations,
    )


SCENARIOS = {
    "region_outage": (region_outage, tuple[str, ...]((EAST, WEST, EU)), None),
    "crash_points": (crash_points, TWO_REGIONS, None),
    "delivery_schedules": (delivery_schedules, TWO_REGIONS, None),
    "racing_writers": (racing_writers, TWO_REGIONS, None),
    "throttling": (throttling, TWO_REGIONS, None),
    "poison_batch": (poison_batch, TWO_REGIONS, None),
    "lifecycle_completion": (lifecycle_completion, tuple[str, ...]((EAST, WEST, EU)), None),
    "leaving_by_hand": (leaving_by_hand, TWO_REGIONS, None),
    "group_retired": (group_retired, tuple[str, ...]((EAST, WEST, EU)), None),
    "table_recreated": (table_recreated, tuple[str, ...]((EAST, WEST, EU)), None),
    "region_readded": (region_readded, tuple[str, ...]((EAST, WEST, EU)), None),
    "consumer_table_recreated": (consumer_table_recreated, tuple[str, ...]((EAST, WEST, EU)), None),
    "quota_pressure": (quota_pressure, tuple[str, ...]((EAST, WEST, EU)), None),
    "acknowledgements_lossy": (
        acknowledgements_lossy,
        tuple[str, ...]((EAST, WEST, EU)),
        StackSpec(admission_barrier=True),
    ),
}
