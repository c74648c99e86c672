"""Describe local groups, claim each snapshot's version after the describe, publish, complete hooks."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID, uuid4

from aws_lambda_powertools.logging import Logger

from producers.snapshot import membership_digest, select_members
from schemas.errors import AddressNotAssignedError, VersionConflictError
from schemas.events import Cause, CauseKind, Member, MembershipSnapshot, Source
from schemas.inventory import GroupInstance, InstanceAddresses
from schemas.ledger import LedgerEntry
from schemas.lifecycle import LifecycleAction, TrueupRequest
from schemas.names import topic_region_and_account
from schemas.settings import Settings


class GroupDirectory(Protocol):
    def group_instances(self, names: Sequence[str]) -> dict[str, tuple[GroupInstance, ...]]: ...


class AddressDirectory(Protocol):
    def instance_addresses(self, group_names: Sequence[str]) -> dict[str, InstanceAddresses]: ...


class VersionLedger(Protocol):
    def ledger(self, cluster: str) -> dict[str, LedgerEntry]: ...

    def claim_version(self, cluster: str, group: str, expected: int, claimed: int) -> bool: ...

    def mark_published(self, cluster: str, group: str, version: int, digest: str) -> None: ...


class SnapshotTopic(Protocol):
    def publish(self, snapshot: MembershipSnapshot) -> str: ...


class LifecycleHooks(Protocol):
    def complete(self, action: LifecycleAction) -> bool: ...


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


@dataclass(frozen=True)
class _Described:
    group: str
    ledger: LedgerEntry
    members: tuple[Member, ...]
    # Every instance the group lists, members or not (pending, leaving, warmed).
    listed: frozenset[str]

    @property
    def digest(self) -> str:
        return membership_digest(self.members)

    @property
    def member_ids(self) -> frozenset[str]:
        return frozenset(member.instance_id for member in self.members)


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
        logger: Logger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_event_id: Callable[[], UUID] = uuid4,
        max_claim_attempts: int = 5,
    ) -> None:
        settings.require("topic_arn", "asg_names")
        self._settings = settings
        self._groups = groups
        self._addresses = addresses
        self._ledger = ledger
        self._topic = topic
        self._hooks = hooks
        self._logger = logger
        self._clock = clock
        self._new_event_id = new_event_id
        self._max_claim_attempts = max_claim_attempts
        _region, self._account = topic_region_and_account(settings.topic_arn or "")

    def handle(self, request: LifecycleAction | TrueupRequest) -> list[Published]:
        if isinstance(request, LifecycleAction):
            return self.on_lifecycle_action(request)
        return self.trueup(request)

    def on_lifecycle_action(self, action: LifecycleAction) -> list[Published]:
        """One action, as EventBridge delivers it: a launch not ready yet raises, to be retried."""
        outcome = self.on_lifecycle_actions([action])
        if outcome.not_ready:
            raise AddressNotAssignedError(
                f"launching instance {action.instance_id} of {action.group_name} has no "
                f"{self._settings.address.value} address yet"
            )
        return outcome.published

    def on_lifecycle_actions(self, actions: Sequence[LifecycleAction]) -> LifecycleOutcome:
        """Publish each group once with every action applied, then CONTINUE every ready action.

        A storm of launches costs one describe per batch, and a membership identical to the last one
        published (because an earlier batch already saw these instances) is not published again.
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
        # An instance launched into the warm pool is stopped there: it is not a member, and its action
        # is completed without waiting for an address.
        leaving = {action.instance_id for action in ours if not action.joins_group}
        published, described = self._publish_groups(
            sorted({action.group_name for action in ours}),
            _cause_of(ours),
            leaving=leaving,
            skip_unchanged=True,
        )
        # Only an instance the group still lists can become ready: one already gone (abandoned,
        # terminated by hand) would otherwise be retried until it reached the dead-letter queue.
        not_ready = [
            action
            for action in ours
            if action.joins_group
            and action.group_name in described
            and action.instance_id in described[action.group_name].listed
            and action.instance_id not in described[action.group_name].member_ids
        ]
        completed = [action for action in ours if action not in not_ready]
        for action in completed:
            still_pending = self._hooks.complete(action)
            self._logger.info(
                "lifecycle action completed" if still_pending else "lifecycle action was no longer pending",
                extra={"group": action.group_name, "instance_id": action.instance_id, "result": "CONTINUE"},
            )
        for action in not_ready:
            self._logger.warning(
                "launching instance has no address yet; its action is left pending for a retry",
                extra={"group": action.group_name, "instance_id": action.instance_id},
            )
        return LifecycleOutcome(published, completed, not_ready)

    def trueup(self, request: TrueupRequest) -> list[Published]:
        """Publish every named local group (all of them by default), changed or not."""
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
        cause = Cause(kind=CauseKind.RESYNC if request.resync else CauseKind.TRUEUP)
        published, _described = self._publish_groups(names, cause, leaving=set(), skip_unchanged=False)
        return published

    def _publish_groups(
        self, names: Sequence[str], cause: Cause, *, leaving: Collection[str], skip_unchanged: bool
    ) -> tuple[list[Published], dict[str, _Described]]:
        """Claim n+1 only if the version is still the n read before the describe; else describe again.

        So versions are committed in the order of the describes: an older view never gets a higher
        version. Returns what was published and what each group's last describe found.
        """
        published: list[Published] = []
        found: dict[str, _Described] = {}
        pending = tuple(names)
        for _attempt in range(self._max_claim_attempts):
            lost: list[str] = []
            for described in self._describe(pending, leaving):
                found[described.group] = described
                if skip_unchanged and described.digest == described.ledger.published_digest:
                    self._logger.info(
                        "membership unchanged since the last published version; not published again",
                        extra={"group": described.group, "version": described.ledger.published},
                    )
                    continue
                claimed = described.ledger.claimed + 1
                if not self._ledger.claim_version(
                    self._settings.cluster, described.group, described.ledger.claimed, claimed
                ):
                    self._logger.info(
                        "version claim lost to another producer; describing again",
                        extra={"group": described.group, "version": claimed},
                    )
                    lost.append(described.group)
                    continue
                published.append(self._publish(described, claimed, cause))
            if not lost:
                return published, found
            pending = tuple(lost)
        raise VersionConflictError(
            f"could not claim a version for {', '.join(pending)} in {self._max_claim_attempts} attempts"
        )

    def _describe(self, names: Sequence[str], leaving: Collection[str]) -> list[_Described]:
        # The ledger is read first: a claim then only succeeds if no describe committed since.
        ledger = self._ledger.ledger(self._settings.cluster)
        instances = self._groups.group_instances(names)
        addresses = self._addresses.instance_addresses(names)
        described = []
        for name in names:
            if name not in instances:
                self._logger.warning(
                    "configured group does not exist; publishing it empty", extra={"group": name}
                )
            members = select_members(instances.get(name, ()), addresses, self._settings.address, leaving)
            listed = frozenset(instance.instance_id for instance in instances.get(name, ()))
            described.append(_Described(name, ledger.get(name, LedgerEntry()), members, listed))
        return described

    def _publish(self, described: _Described, version: int, cause: Cause) -> Published:
        snapshot = MembershipSnapshot(
            cluster=self._settings.cluster,
            source=Source(account=self._account, region=self._settings.region, group=described.group),
            version=version,
            cause=cause,
            members=described.members,
            event_id=self._new_event_id(),
            produced_at=self._clock(),
        )
        message_id = self._topic.publish(snapshot)
        self._ledger.mark_published(self._settings.cluster, described.group, version, described.digest)
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


def _cause_of(actions: Sequence[LifecycleAction]) -> Cause:
    """One action names itself; a batch names the kind of its first action only."""
    first = actions[0]
    kind = CauseKind.LAUNCHING if first.launching else CauseKind.TERMINATING
    if len(actions) > 1:
        return Cause(kind=kind)
    return Cause(
        kind=kind, instance_id=first.instance_id, lifecycle_hook=first.hook_name, lifecycle_token=first.token
    )
