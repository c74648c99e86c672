"""Validate delivered snapshots, keep the newest per source, and make the local groups match."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aws_lambda_powertools.logging import Logger

from consumers.metrics import Outcome
from consumers.reconcile import Plan, desired_rules, rules_after
from consumers.sharding import GroupPlans, Shard, plan_every_group, plan_shards
from consumers.state import newest_per_source
from schemas.audit import AuditEntry, AuditKind
from schemas.errors import InvalidRecordError, RuleConflictError, RuleQuotaExceededError
from schemas.events import MembershipSnapshot, parse_snapshot
from schemas.names import topic_region_and_account
from schemas.rules import DesiredRule, ExistingRule, Family, Permission
from schemas.settings import Settings, TargetMode

# Producers' clocks may run this far ahead of ours before a snapshot counts as dated in the future.
CLOCK_SKEW = timedelta(minutes=5)


class SourceStates(Protocol):
    def store_if_newer(self, snapshot: MembershipSnapshot) -> bool: ...

    def stored_states(self, cluster: str) -> list[MembershipSnapshot]: ...


class AuditLog(Protocol):
    def record(self, cluster: str, entries: Sequence[AuditEntry], retention_days: int) -> None: ...


# Checks an SNS envelope's signature (consumers.signatures in Lambda); raises InvalidRecordError.
VerifyEnvelope = Callable[[Mapping[str, object]], None]


class Outcomes(Protocol):
    """Where the consumer counts what happened (EMF metrics in Lambda)."""

    def count(self, outcome: Outcome, value: int = 1, reason: str | None = None) -> None: ...

    def gauge(self, outcome: Outcome, value: int) -> None: ...


class SecurityGroups(Protocol):
    def ingress_rules(self, group_id: str) -> list[ExistingRule]: ...

    def authorize(self, group_id: str, rules: Sequence[DesiredRule]) -> None: ...

    def revoke(self, group_id: str, rules: Sequence[ExistingRule]) -> None: ...


class Target(Protocol):
    """Where the addresses go when not into per-address rules (e.g. consumers.prefix_list_target)."""

    def review(self) -> tuple[GroupReview, ...]: ...

    def reconcile(self, causes: Sequence[dict[str, Any]]) -> tuple[Plan, ...]: ...


@dataclass(frozen=True)
class GroupReview:
    """A group's plan, and its inbound rules per address family once the plan is applied."""

    plan: Plan
    rules_after: dict[Family, int]
    quota: int

    @property
    def over_quota(self) -> bool:
        return any(count > self.quota for count in self.rules_after.values())


@dataclass(frozen=True)
class ApplyReport:
    applied: tuple[MembershipSnapshot, ...]
    stale: tuple[MembershipSnapshot, ...]
    plans: tuple[Plan, ...]


class ApplyService:
    """The consumer: newest version wins per source, then a level-triggered reconcile of every group."""

    def __init__(
        self,
        *,
        settings: Settings,
        states: SourceStates,
        groups: SecurityGroups,
        audit: AuditLog,
        outcomes: Outcomes,
        verify: VerifyEnvelope,
        logger: Logger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_conflict_retries: int = 3,
        rule_quota: Callable[[], int] | None = None,
        target: Target | None = None,
    ) -> None:
        settings.require("security_group_ids", "ports", "peer_topic_arns")
        # The rule budget (Service Quotas capped by the setting, in the deployed consumer) is read on
        # first use, not here: building the service makes no AWS call.
        self._rule_quota = rule_quota or (lambda: settings.rule_quota)
        self._target = target
        self._settings = settings
        self._states = states
        self._groups = groups
        self._audit = audit
        self._outcomes = outcomes
        self._verify = verify
        self._logger = logger
        self._clock = clock
        self._max_conflict_retries = max_conflict_retries

    def accept(self, body: str, message_id: str) -> MembershipSnapshot:
        """Validate one SQS body (an SNS envelope); reject anything this cluster must not apply."""
        try:
            return self._validate(body)
        except InvalidRecordError as error:
            self._logger.error(
                "record rejected",
                extra={"message_id": message_id, "reason": error.reason, "error": str(error)},
            )
            self._outcomes.count(Outcome.REJECTED, reason=error.reason)
            raise

    def apply(self, snapshots: Sequence[MembershipSnapshot]) -> ApplyReport:
        """Store the newest snapshot of each source (if newer than the table's), then reconcile once.

        Snapshots older than the maximum event age are dropped unapplied: the next true-up supersedes
        anything merely delayed, and a captured message replayed later cannot act.
        """
        fresh = self._drop_expired(snapshots)
        newest = newest_per_source(fresh)
        applied: list[MembershipSnapshot] = []
        stale: list[MembershipSnapshot] = []
        for snapshot in newest.values():
            stored = self._states.store_if_newer(snapshot)
            (applied if stored else stale).append(snapshot)
            self._logger.info(
                "snapshot applied" if stored else "snapshot stale; table already has this version or newer",
                extra=_snapshot_fields(snapshot),
            )
        coalesced = len(fresh) - len(newest)
        if coalesced:
            self._logger.info("older snapshots coalesced in batch", extra={"coalesced": coalesced})
        self._outcomes.count(Outcome.APPLIED, len(applied))
        self._outcomes.count(Outcome.STALE, len(stale) + coalesced)
        plans = self.reconcile(applied)
        self._record(applied, plans)
        return ApplyReport(tuple(applied), tuple(stale), plans)

    def count_invocation(self, *, retried: int, throttled: int) -> None:
        """Records SQS will deliver again, and AWS calls throttled (and retried by botocore) meanwhile."""
        self._outcomes.count(Outcome.RETRIED, retried)
        self._outcomes.count(Outcome.THROTTLED, throttled)

    def plan(self) -> tuple[GroupReview, ...]:
        """What a reconcile would change now; reads only, and reports quota problems instead of raising."""
        if self._target is not None:
            return self._target.review()
        quota = self._rule_quota()
        return tuple(
            GroupReview(plan, dict(rules_after(plan, existing)), quota)
            for plan, existing in self._observe(quota).plans
        )

    def reconcile(self, causes: Iterable[MembershipSnapshot] = ()) -> tuple[Plan, ...]:
        """Desired from the table, actual from EC2; apply the difference, re-planning on conflicts.

        Every group's plan is checked against the quota before any group is touched.
        """
        cause_fields = [_snapshot_fields(snapshot) for snapshot in causes]
        if self._target is not None:
            return self._target.reconcile(cause_fields)
        for attempt in range(1, self._max_conflict_retries + 2):
            # Actual and then desired are re-read on every attempt: a conflict means another
            # consumer wrote, and it may have stored a newer snapshot first; a stale desired would
            # revoke the members that snapshot added.
            quota = self._rule_quota()
            observed = self._observe(quota)
            try:
                observed.check(quota)
            except RuleQuotaExceededError as error:
                self._logger.error(
                    "plan exceeds the rule quota; nothing was changed", extra={"error": str(error)}
                )
                self._outcomes.count(Outcome.QUOTA_EXCEEDED)
                raise
            try:
                for step in observed.steps:
                    self._execute(step, cause_fields)
                self._check_moves_landed(observed.moved)
            except RuleConflictError as conflict:
                self._logger.warning(
                    "group changed under us; re-planning", extra={"attempt": attempt, "error": str(conflict)}
                )
                self._outcomes.count(Outcome.CONFLICT_RETRIED)
                continue
            self._outcomes.gauge(Outcome.RULE_HEADROOM, _headroom(observed, quota))
            return tuple(plan for plan, _existing in observed.plans)
        raise RuleConflictError(
            f"groups kept changing under us for {self._max_conflict_retries + 1} attempts; "
            "the record will be retried"
        )

    def _check_moves_landed(self, moved: frozenset[Permission]) -> None:
        """A rule moved between shard groups must be in some group once we are done.

        Reading the groups one after another is not one moment: a consumer racing a move can see the
        moving rule in both groups and keep the copy the other is revoking. No call fails then, so
        this re-read is what turns it into a conflict, and a re-plan puts the rule back at once.
        """
        if not moved:
            return
        present = {
            rule.permission
            for group in self._settings.security_group_ids
            for rule in self._groups.ingress_rules(group)
        }
        lost = sorted(str(permission) for permission in moved - present)
        if lost:
            raise RuleConflictError(f"moved rules in no group after the move: {', '.join(lost)}")

    def _drop_expired(self, snapshots: Sequence[MembershipSnapshot]) -> list[MembershipSnapshot]:
        oldest = self._clock() - timedelta(seconds=self._settings.max_event_age_seconds)
        fresh = []
        for snapshot in snapshots:
            if snapshot.produced_at >= oldest:
                fresh.append(snapshot)
                continue
            self._logger.warning(
                "snapshot dropped: older than SGMESH_MAX_EVENT_AGE_SECONDS",
                extra={**_snapshot_fields(snapshot), "produced_at": snapshot.produced_at.isoformat()},
            )
        self._outcomes.count(Outcome.EXPIRED, len(snapshots) - len(fresh))
        return fresh

    def _desired(self) -> dict[Permission, DesiredRule]:
        return desired_rules(
            self._settings.cluster,
            self._states.stored_states(self._settings.cluster),
            self._settings.ports,
            self._settings.address,
        )

    def _observe(self, quota: int) -> GroupPlans:
        """Read the groups, then the table, and plan.

        In that order: a rule we see was authorized by a consumer that had stored its snapshot
        before, so the table read after it includes that member. Read the other way round, a
        member stored and authorized in between would look unwanted and be revoked, with no
        conflict to stop it. (Groups read one after another are not one moment either; for rules
        moving between shard groups, `_check_moves_landed` closes that gap.)
        """
        shards = [
            Shard(group, tuple(self._groups.ingress_rules(group)))
            for group in self._settings.security_group_ids
        ]
        desired = self._desired()
        if self._settings.target is TargetMode.SHARDED:
            return plan_shards(self._settings.cluster, desired, shards, quota)
        return plan_every_group(self._settings.cluster, desired, shards)

    def _record(self, applied: Sequence[MembershipSnapshot], plans: Sequence[Plan]) -> None:
        """Append to the audit trail. The groups are already right: a failure is logged, not retried."""
        now = self._clock()
        causes = tuple(f"{snapshot.source.key}@{snapshot.version}" for snapshot in applied)
        entries = [
            AuditEntry(
                at=now,
                kind=AuditKind.SNAPSHOT_APPLIED,
                source=snapshot.source.key,
                version=snapshot.version,
                event_id=str(snapshot.event_id),
                cause=_cause_label(snapshot),
                members=len(snapshot.members),
            )
            for snapshot in applied
        ] + [
            AuditEntry(
                at=now,
                kind=AuditKind.RULES_CHANGED,
                group_id=plan.group_id,
                authorized=tuple(str(rule.permission) for rule in plan.authorize),
                revoked=tuple(str(rule.permission) for rule in plan.revoke if rule.permission is not None),
                causes=causes,
            )
            for plan in plans
            if not plan.is_empty
        ]
        if not entries:
            return
        try:
            self._audit.record(self._settings.cluster, entries, self._settings.event_retention_days)
        except Exception as error:  # the audit trail must never undo or repeat a correct reconcile
            self._logger.error(
                "audit trail write failed", extra={"error": str(error), "entries": len(entries)}
            )

    def _execute(self, plan: Plan, causes: list[dict[str, Any]]) -> None:
        # Revoke first so a membership swap never needs more than the quota in between.
        if plan.revoke:
            self._groups.revoke(plan.group_id, plan.revoke)
            self._outcomes.count(Outcome.RULES_REVOKED, len(plan.revoke))
        if plan.authorize:
            self._groups.authorize(plan.group_id, plan.authorize)
            self._outcomes.count(Outcome.RULES_AUTHORIZED, len(plan.authorize))
        if not plan.is_empty:
            self._logger.info(
                "security group reconciled",
                extra={
                    "group_id": plan.group_id,
                    "authorized": [f"{rule.permission} ({rule.description})" for rule in plan.authorize],
                    "revoked": [f"{rule.permission} ({rule.description})" for rule in plan.revoke],
                    "causes": causes,
                },
            )

    def _validate(self, body: str) -> MembershipSnapshot:
        try:
            envelope = json.loads(body)
        except json.JSONDecodeError as error:
            raise InvalidRecordError(f"body is not JSON: {error}", "not-json") from None
        if not isinstance(envelope, dict) or envelope.get("Type") != "Notification":
            raise InvalidRecordError(
                "body is not an SNS notification envelope (raw delivery must be off)", "not-sns-envelope"
            )
        topic_arn = envelope.get("TopicArn")
        if topic_arn not in self._settings.peer_topic_arns:
            raise InvalidRecordError(
                f"TopicArn {topic_arn!r} is not in SGMESH_PEER_TOPIC_ARNS", "unknown-topic"
            )
        # After the allowlist, so an unknown topic costs no certificate fetch; before the Message is
        # parsed, so nothing unsigned is read.
        self._verify(envelope)
        message = envelope.get("Message")
        if not isinstance(message, str):
            raise InvalidRecordError("SNS envelope has no Message string", "not-sns-envelope")
        snapshot = parse_snapshot(message)
        if snapshot.cluster != self._settings.cluster:
            raise InvalidRecordError(
                f"cluster {snapshot.cluster!r} is not this deployment's cluster {self._settings.cluster!r}",
                "wrong-cluster",
            )
        region, account = topic_region_and_account(topic_arn)
        if (snapshot.source.region, snapshot.source.account) != (region, account):
            raise InvalidRecordError(
                f"source {snapshot.source.key!r} did not come from its own region's topic {topic_arn!r}",
                "wrong-source",
            )
        if snapshot.produced_at > self._clock() + CLOCK_SKEW:
            raise InvalidRecordError(
                f"produced_at {snapshot.produced_at.isoformat()} is in the future", "produced-in-future"
            )
        return snapshot


def _headroom(observed: GroupPlans, quota: int) -> int:
    """The fewest rules any group can still take once the plans are applied, in either family."""
    return min(
        (quota - max(rules_after(plan, existing).values(), default=0) for plan, existing in observed.plans),
        default=quota,
    )


def _cause_label(snapshot: MembershipSnapshot) -> str:
    cause = snapshot.cause
    return f"{cause.kind.value} {cause.instance_id}" if cause.instance_id else cause.kind.value


def _snapshot_fields(snapshot: MembershipSnapshot) -> dict[str, Any]:
    return {
        "event_id": str(snapshot.event_id),
        "source": snapshot.source.key,
        "version": snapshot.version,
        "cause": snapshot.cause.kind.value,
        "members": len(snapshot.members),
    }
