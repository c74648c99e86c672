"""Describe local groups, claim each snapshot's version after the describe, publish, complete hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID, uuid4

from aws_lambda_powertools.logging import Logger

from producers.admission import AdmissionBarrier
from producers.metrics import ProducerOutcome
from producers.snapshot import Selection, is_member_state, membership_digest, select_members
from schemas.errors import AddressNotAssignedError, SnapshotsNotPublishedError, VersionConflictError
from schemas.events import Cause, CauseKind, Member, MembershipSnapshot, Source
from schemas.inventory import GroupInstance, InstanceAddresses
from schemas.ledger import LedgerEntry
from schemas.lifecycle import AdmissionCheck, LifecycleAction, ProducerRequest, TrueupRequest
from schemas.names import topic_region_and_account
from schemas.settings import Settings


class GroupDirectory(Protocol):
    def group_instances(self, names: Sequence[str]) -> dict[str, tuple[GroupInstance, ...]]: ...


class AddressDirectory(Protocol):
    def instance_addresses(self, group_names: Sequence[str]) -> dict[str, InstanceAddresses]: ...


class VersionLedger(Protocol):
    def ledger(self, cluster: str) -> dict[str, LedgerEntry]: ...

    def claim_version(self, cluster: str, group: str, expected: int, claimed: int) -> bool: ...

    def mark_published(
        self, cluster: str, group: str, version: int, digest: str, *, at: datetime, retired: bool
    ) -> None: ...


class SnapshotTopic(Protocol):
    def publish(self, snapshot: MembershipSnapshot) -> str: ...


class LifecycleHooks(Protocol):
    def complete(self, action: LifecycleAction) -> bool: ...


class ProducerOutcomes(Protocol):
    """Where the producer counts what an operator must hear of (EMF metrics in Lambda)."""

    def count(self, outcome: ProducerOutcome, value: int = 1) -> None: ...


@dataclass(frozen=True)
class Published:
    group: str
    version: int
    event_id: str
    message_id: str
    members: int


@dataclass(frozen=True)
class LifecycleOutcome:
    """What became of a batch of lifecycle actions."""

    published: list[Published] = field(default_factory=list)
    completed: list[LifecycleAction] = field(default_factory=list)
    # Launches whose instance has no address yet: not completed, to be retried.
    not_ready: list[LifecycleAction] = field(default_factory=list)
    # Actions of groups whose snapshot could not be published: not completed, to be retried.
    failed: list[LifecycleAction] = field(default_factory=list)
    # Why each of those groups failed.
    errors: dict[str, Exception] = field(default_factory=dict)
    # Launches waiting for the admission barrier: completed later, once admitted or timed out.
    held: list[LifecycleAction] = field(default_factory=list)

    @property
    def to_retry(self) -> list[LifecycleAction]:
        return self.not_ready + self.failed


@dataclass(frozen=True)
class _Described:
    group: str
    ledger: LedgerEntry
    selection: Selection
    # Every instance the group lists, members or not (pending, leaving, warmed), and its state.
    listed: Mapping[str, str]

    @property
    def members(self) -> tuple[Member, ...]:
        return self.selection.members

    @property
    def digest(self) -> str:
        return membership_digest(self.members)

    @property
    def member_ids(self) -> frozenset[str]:
        return frozenset(member.instance_id for member in self.members)

    def may_become_member(self, instance_id: str) -> bool:
        """Listed in a state that keeps it in the group, not a member yet, and not left out for good."""
        state = self.listed.get(instance_id)
        return (
            state is not None
            and is_member_state(state)
            and instance_id not in self.member_ids
            and instance_id not in self.selection.left_out_ids
        )


@dataclass
class _Round:
    """What publishing a set of groups came to: each group published, found unchanged, or failed."""

    published: list[Published] = field(default_factory=list)
    described: dict[str, _Described] = field(default_factory=dict)
    failed: dict[str, Exception] = field(default_factory=dict)

    def raise_failures(self) -> None:
        if len(self.failed) == 1:
            raise next(iter(self.failed.values()))
        if self.failed:
            raise SnapshotsNotPublishedError(
                "snapshots not published: "
                + "; ".join(f"{group}: {error}" for group, error in sorted(self.failed.items()))
            )


class _ClaimLost(Exception):
    """Another producer claimed a version since our ledger read: describe again, claim the next."""


class SnapshotService:
    """Publishes full membership snapshots of this region's groups to this region's topic."""

    def __init__(
        self,
        *,
        settings: Settings,
        groups: GroupDirectory,
        addresses: AddressDirectory,
        ledger: VersionLedger,
        topic: SnapshotTopic,
        hooks: LifecycleHooks,
        outcomes: ProducerOutcomes,
        logger: Logger,
        barrier: AdmissionBarrier | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_event_id: Callable[[], UUID] = uuid4,
        max_claim_attempts: int = 5,
    ) -> None:
        settings.require("topic_arn", "asg_names")
        # Launches wait for the mesh only where the settings ask for it and name a queue to time them out.
        self._barrier = barrier if settings.holds_launches else None
        self._settings = settings
        self._groups = groups
        self._addresses = addresses
        self._ledger = ledger
        self._topic = topic
        self._hooks = hooks
        self._outcomes = outcomes
        self._logger = logger
        self._clock = clock
        self._new_event_id = new_event_id
        self._max_claim_attempts = max_claim_attempts
        _region, self._account = topic_region_and_account(settings.topic_arn or "")

    def handle(self, request: ProducerRequest) -> list[Published]:
        if isinstance(request, LifecycleAction):
            return self.on_lifecycle_action(request)
        if isinstance(request, AdmissionCheck):
            self.check_admissions([request])
            return []
        return self.trueup(request)

    def check_admissions(self, checks: Sequence[AdmissionCheck]) -> None:
        """Complete the waiting launches the mesh admits now, or whose admission timeout has come."""
        if self._barrier is None:
            self._logger.warning("admission check, and launches do not wait here (no barrier); ignored")
            return
        for check in checks:
            self._barrier.settle(check)

    def on_lifecycle_action(self, action: LifecycleAction) -> list[Published]:
        """One action, as EventBridge delivers it: a launch not ready yet, or a publish that failed,
        raises, to be retried. A launch into the group, where launches wait for the admission barrier,
        goes through the lifecycle buffer instead (AdmissionBarrier.forward)."""
        if self._barrier is not None and action.joins_group and action.group_name in self._settings.asg_names:
            self._barrier.forward(action)
            return []
        outcome = self.on_lifecycle_actions([action])
        if outcome.failed:
            raise outcome.errors[action.group_name]
        if outcome.not_ready:
            raise AddressNotAssignedError(
                f"launching instance {action.instance_id} of {action.group_name} has no "
                f"{self._settings.address.value} address yet"
            )
        return outcome.published

    def on_lifecycle_actions(self, actions: Sequence[LifecycleAction]) -> LifecycleOutcome:
        """Publish each group once with every action applied, then CONTINUE every ready action.

        A storm of launches costs one describe per batch, and a membership consumers already hold
        (because an earlier batch published these instances) is not published again. A group whose
        publish fails fails alone: its actions are retried, the other groups' are completed.
        """
        ours = [action for action in actions if action.group_name in self._settings.asg_names]
        for action in actions:
            if action.group_name not in self._settings.asg_names:
                self._logger.warning(
                    "lifecycle action for a group this stack does not manage; ignored",
                    extra={"group": action.group_name, "instance_id": action.instance_id},
                )
        if not ours:
            return LifecycleOutcome()
        waiting = [action for action in ours if action.joins_group] if self._barrier is not None else []
        held: list[LifecycleAction] = []

        def hold(described: _Described, version: int) -> None:
            """Before the version that admits them is published: the launches it admits wait for it."""
            admitted = [
                action
                for action in waiting
                if action.group_name == described.group and action.instance_id in described.member_ids
            ]
            if self._barrier is not None and admitted:
                self._barrier.hold(described.group, version, admitted)
            held.extend(action for action in admitted if action not in held)

        round_ = self._publish_groups(
            sorted({action.group_name for action in ours}), _cause_of(ours), before_publish=hold
        )
        published = {item.group for item in round_.published}
        unchanged = [
            described
            for group, described in round_.described.items()
            if group not in published and group not in round_.failed
        ]
        for described in unchanged:
            # The version consumers hold already admits them: acknowledgements may be in already.
            hold(described, described.ledger.published or described.ledger.claimed)
        failed = [action for action in ours if action.group_name in round_.failed]
        held = [action for action in held if action not in failed]
        not_ready = [
            action
            for action in ours
            if action.joins_group
            and action.group_name in round_.described
            and action not in failed
            and round_.described[action.group_name].may_become_member(action.instance_id)
        ]
        completed = [
            action
            for action in ours
            if action not in not_ready and action not in failed and action not in held
        ]
        if self._barrier is not None and held:
            self._barrier.start_timers(held)
            ready = tuple(sorted({d.group for d in unchanged if any(a.group_name == d.group for a in held)}))
            if ready:
                self._barrier.settle(AdmissionCheck(ready))
        still_held = sum(
            self._complete(action, round_.described.get(action.group_name)) for action in completed
        )
        self._outcomes.count(ProducerOutcome.LIFECYCLE_COMPLETED, still_held)
        for action in not_ready:
            self._logger.warning(
                "launching instance has no address yet; its action is left pending for a retry",
                extra={"group": action.group_name, "instance_id": action.instance_id},
            )
        return LifecycleOutcome(round_.published, completed, not_ready, failed, dict(round_.failed), held)

    def trueup(self, request: TrueupRequest) -> list[Published]:
        """Publish every named local group (all of them by default), changed or not; a true-up of the
        whole region also publishes the retirement of every group its settings no longer name. A group
        that cannot publish fails alone: the others publish, then the invocation fails."""
        managed = self._settings.asg_names
        requested = request.group_names or managed
        unknown = [name for name in requested if name not in managed]
        if unknown:
            self._logger.warning(
                "true-up for groups this stack does not manage; ignored", extra={"groups": unknown}
            )
        names = tuple(name for name in requested if name in managed)
        if not names:
            return []
        ledger = self._ledger.ledger(self._settings.cluster)
        cause = Cause(kind=CauseKind.RESYNC if request.resync else CauseKind.TRUEUP)
        round_ = self._publish_groups(names, cause, ledger=ledger, publish_unchanged=True)
        if not request.group_names:
            retired = self._retire(ledger)
            round_.published.extend(retired.published)
            round_.failed.update(retired.failed)
        round_.raise_failures()
        return round_.published

    def retire_region(self) -> list[Published]:
        """Publish the retirement of every group of the region, named or only in the ledger: the
        region leaves the mesh (`sgmesh teardown`), so every other region stops admitting its members."""
        ledger = self._ledger.ledger(self._settings.cluster)
        names = sorted({*ledger, *self._settings.asg_names})
        round_ = self._publish_groups(
            names, Cause(kind=CauseKind.RETIRED), ledger=ledger, publish_unchanged=True
        )
        round_.raise_failures()
        return round_.published

    def _retire(self, ledger: Mapping[str, LedgerEntry]) -> _Round:
        """Publish an empty snapshot, cause `retired`, of every group the ledger knows and the settings
        no longer name, on every true-up for RETIREMENT_PERIOD (a lost delivery is repaired); then
        DynamoDB's TTL forgets it."""
        now = self._clock()
        due = []
        for group, entry in sorted(ledger.items()):
            if group in self._settings.asg_names:
                continue
            if entry.retirement_due(now):
                due.append(group)
                self._logger.info(
                    "group no longer in SGMESH_ASG_NAMES; publishing its retirement",
                    extra={"group": group, "retired_at": entry.retired_at and entry.retired_at.isoformat()},
                )
        if not due:
            return _Round()
        return self._publish_groups(due, Cause(kind=CauseKind.RETIRED), ledger=ledger, publish_unchanged=True)

    def _publish_groups(
        self,
        names: Sequence[str],
        cause: Cause,
        *,
        ledger: Mapping[str, LedgerEntry] | None = None,
        publish_unchanged: bool = False,
        before_publish: Callable[[_Described, int], None] | None = None,
    ) -> _Round:
        """Claim a version above the one read before the describe, only if it is still the one read;
        else describe again. So versions are committed in the order of the describes: an older view
        never gets a higher version. A group that fails (its claims keep being lost, or its publish
        fails) fails alone; `ledger` is a read taken before this call, used for the first attempt."""
        round_ = _Round()
        pending = tuple(names)
        for _attempt in range(self._max_claim_attempts):
            lost: list[str] = []
            for described in self._describe(pending, cause, ledger):
                round_.described[described.group] = described
                try:
                    published = self._claim_and_publish(
                        described, cause, publish_unchanged=publish_unchanged, before_publish=before_publish
                    )
                except _ClaimLost:
                    lost.append(described.group)
                    continue
                except Exception as error:  # one group's failure must not cost the others their publish
                    self._logger.exception(
                        "snapshot not published; the group fails alone",
                        extra={"group": described.group, "error": str(error)},
                    )
                    round_.failed[described.group] = error
                    continue
                if published is not None:
                    round_.published.append(published)
            if not lost:
                return round_
            pending, ledger = tuple(lost), None
        for group in pending:
            round_.failed[group] = VersionConflictError(
                f"could not claim a version for {group} in {self._max_claim_attempts} attempts"
            )
        return round_

    def _claim_and_publish(
        self,
        described: _Described,
        cause: Cause,
        *,
        publish_unchanged: bool,
        before_publish: Callable[[_Described, int], None] | None,
    ) -> Published | None:
        """The group's snapshot published, or None: consumers already hold this membership."""
        if not publish_unchanged and described.ledger.holds(described.digest):
            self._logger.info(
                "membership unchanged since the last published version; not published again",
                extra={"group": described.group, "version": described.ledger.published},
            )
            return None
        version = described.ledger.next_version(self._clock())
        if not self._ledger.claim_version(
            self._settings.cluster, described.group, described.ledger.claimed, version
        ):
            self._logger.info(
                "version claim lost to another producer; describing again",
                extra={"group": described.group, "version": version},
            )
            raise _ClaimLost(described.group)
        if before_publish is not None:
            before_publish(described, version)
        return self._publish(described, version, cause)

    def _describe(
        self, names: Sequence[str], cause: Cause, ledger: Mapping[str, LedgerEntry] | None
    ) -> list[_Described]:
        # The ledger is read first: a claim then only succeeds if no describe committed since.
        if ledger is None:
            ledger = self._ledger.ledger(self._settings.cluster)
        if cause.kind is CauseKind.RETIRED:  # nothing to describe: the group is no source any more
            return [_Described(name, ledger.get(name, LedgerEntry()), Selection(()), {}) for name in names]
        instances = self._groups.group_instances(names)
        addresses = self._addresses.instance_addresses(names)
        described = []
        for name in names:
            if name not in instances:
                self._logger.warning(
                    "configured group does not exist; publishing it empty", extra={"group": name}
                )
            selection = select_members(instances.get(name, ()), addresses, self._settings.address)
            self._report_unusable(name, selection)
            listed = {instance.instance_id: instance.lifecycle_state for instance in instances.get(name, ())}
            described.append(_Described(name, ledger.get(name, LedgerEntry()), selection, listed))
        return described

    def _report_unusable(self, group: str, selection: Selection) -> None:
        for unusable in selection.left_out:
            self._logger.warning(
                "instance left out: an address the address mode uses is unusable",
                extra={"group": group, **vars(unusable), "address_mode": self._settings.address.value},
            )
        if selection.left_out:
            self._outcomes.count(ProducerOutcome.INSTANCES_LEFT_OUT, len(selection.left_out_ids))
        for unusable in selection.dropped:
            self._logger.warning(
                "address left out of its member: the address mode does not use it, and it is unusable",
                extra={"group": group, **vars(unusable), "address_mode": self._settings.address.value},
            )

    def _publish(self, described: _Described, version: int, cause: Cause) -> Published:
        now = self._clock()
        snapshot = MembershipSnapshot(
            cluster=self._settings.cluster,
            source=Source(account=self._account, region=self._settings.region, group=described.group),
            version=version,
            cause=cause,
            members=described.members,
            event_id=self._new_event_id(),
            produced_at=now,
        )
        message_id = self._topic.publish(snapshot)
        self._ledger.mark_published(
            self._settings.cluster,
            described.group,
            version,
            described.digest,
            at=now,
            retired=cause.kind is CauseKind.RETIRED,
        )
        self._logger.info(
            "snapshot published",
            extra={
                "event_id": str(snapshot.event_id),
                "source": snapshot.source.key,
                "version": version,
                "cause": cause.kind.value,
                "members": [member.instance_id for member in snapshot.members],
                "message_id": message_id,
            },
        )
        return Published(described.group, version, str(snapshot.event_id), message_id, len(described.members))

    def _complete(self, action: LifecycleAction, described: _Described | None) -> bool:
        """Complete the action; whether Auto Scaling still held it."""
        state = described.listed.get(action.instance_id) if described else None
        if action.joins_group and state is not None and not is_member_state(state):
            self._logger.warning(
                "launching instance is already leaving the group; its action is completed, not retried",
                extra={"group": action.group_name, "instance_id": action.instance_id, "state": state},
            )
        still_pending = self._hooks.complete(action)
        self._logger.info(
            "lifecycle action completed" if still_pending else "lifecycle action was no longer pending",
            extra={"group": action.group_name, "instance_id": action.instance_id, "result": "CONTINUE"},
        )
        return still_pending


def _cause_of(actions: Sequence[LifecycleAction]) -> Cause:
    """One action names itself; a batch names the kind of its first action only."""
    first = actions[0]
    kind = CauseKind.LAUNCHING if first.launching else CauseKind.TERMINATING
    if len(actions) > 1:
        return Cause(kind=kind)
    return Cause(
        kind=kind, instance_id=first.instance_id, lifecycle_hook=first.hook_name, lifecycle_token=first.token
    )
