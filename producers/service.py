"""Describe local groups, claim each snapshot's version after the describe, publish, complete hooks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID, uuid4

from aws_lambda_powertools.logging import Logger

from producers.snapshot import build_snapshot, select_members
from schemas.errors import AddressNotAssignedError, VersionConflictError
from schemas.events import Cause, CauseKind, Member, MembershipSnapshot, Source
from schemas.inventory import GroupInstance, InstanceAddresses
from schemas.lifecycle import LifecycleAction, TrueupRequest
from schemas.names import topic_region_and_account
from schemas.settings import Settings


class GroupDirectory(Protocol):
    def group_instances(self, names: Sequence[str]) -> dict[str, tuple[GroupInstance, ...]]: ...


class AddressDirectory(Protocol):
    def instance_addresses(self, group_names: Sequence[str]) -> dict[str, InstanceAddresses]: ...


class VersionLedger(Protocol):
    def claimed_versions(self, cluster: str) -> dict[str, int]: ...

    def claim_version(self, cluster: str, group: str, expected: int, claimed: int) -> bool: ...

    def mark_published(self, cluster: str, group: str, version: int) -> None: ...


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
class _Described:
    group: str
    expected_version: int
    members: tuple[Member, ...]


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
        """Publish the group's membership with the action applied, then CONTINUE the hook."""
        if action.group_name not in self._settings.asg_names:
            self._logger.warning(
                "lifecycle action for a group this stack does not manage; ignored",
                extra={"group": action.group_name, "instance_id": action.instance_id},
            )
            return []
        cause = Cause(
            kind=CauseKind.LAUNCHING if action.launching else CauseKind.TERMINATING,
            instance_id=action.instance_id,
            lifecycle_hook=action.hook_name,
            lifecycle_token=action.token,
        )
        published = self._publish_groups(
            (action.group_name,),
            cause,
            leaving=None if action.launching else action.instance_id,
            arriving=action.instance_id if action.launching else None,
        )
        completed = self._hooks.complete(action)
        self._logger.info(
            "lifecycle action completed" if completed else "lifecycle action was no longer pending",
            extra={"group": action.group_name, "instance_id": action.instance_id, "result": "CONTINUE"},
        )
        return published

    def trueup(self, request: TrueupRequest) -> list[Published]:
        """Publish every named local group (all of them by default), whatever changed or not."""
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
        return self._publish_groups(names, cause)

    def _publish_groups(
        self,
        names: Sequence[str],
        cause: Cause,
        *,
        leaving: str | None = None,
        arriving: str | None = None,
    ) -> list[Published]:
        """Claim n+1 only if the version is still the n read before the describe; else describe again.

        So versions are committed in the order of the describes: an older view never gets a higher version.
        """
        published: list[Published] = []
        pending = tuple(names)
        for _attempt in range(self._max_claim_attempts):
            lost: list[str] = []
            for described in self._describe(pending, leaving=leaving, arriving=arriving):
                claimed = described.expected_version + 1
                if not self._ledger.claim_version(
                    self._settings.cluster, described.group, described.expected_version, claimed
                ):
                    self._logger.info(
                        "version claim lost to another producer; describing again",
                        extra={"group": described.group, "version": claimed},
                    )
                    lost.append(described.group)
                    continue
                published.append(self._publish(described, claimed, cause))
            if not lost:
                return published
            pending = tuple(lost)
        raise VersionConflictError(
            f"could not claim a version for {', '.join(pending)} in {self._max_claim_attempts} attempts"
        )

    def _describe(
        self, names: Sequence[str], *, leaving: str | None, arriving: str | None
    ) -> list[_Described]:
        # The versions are read first: a claim then only succeeds if no describe committed since.
        versions = self._ledger.claimed_versions(self._settings.cluster)
        instances = self._groups.group_instances(names)
        addresses = self._addresses.instance_addresses(names)
        described = []
        for name in names:
            if name not in instances:
                self._logger.warning(
                    "configured group does not exist; publishing it empty", extra={"group": name}
                )
            members = select_members(instances.get(name, ()), addresses, self._settings.address, leaving)
            if arriving is not None and all(member.instance_id != arriving for member in members):
                raise AddressNotAssignedError(
                    f"launching instance {arriving} of {name} has no "
                    f"{self._settings.address.value} address yet"
                )
            described.append(_Described(name, versions.get(name, 0), members))
        return described

    def _publish(self, described: _Described, version: int, cause: Cause) -> Published:
        snapshot = build_snapshot(
            cluster=self._settings.cluster,
            source=Source(account=self._account, region=self._settings.region, group=described.group),
            version=version,
            cause=cause,
            members=described.members,
            event_id=self._new_event_id(),
            produced_at=self._clock(),
        )
        message_id = self._topic.publish(snapshot)
        self._ledger.mark_published(self._settings.cluster, described.group, version)
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
