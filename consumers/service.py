"""Validate delivered snapshots, keep the newest per source, and make the target (groups, lists) match."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from aws_lambda_powertools.logging import Logger

from consumers.acknowledgements import Acknowledgements
from consumers.metrics import Outcome
from consumers.resync import Resync
from consumers.review import Review
from consumers.state import newest_per_source
from schemas.audit import AuditEntry, AuditKind
from schemas.errors import InvalidRecordError, RuleConflictError, RuleQuotaExceededError
from schemas.events import (
    Acknowledgement,
    Acknowledger,
    Event,
    MembershipSnapshot,
    Requester,
    ResyncReason,
    ResyncRequest,
    Source,
    parse_event,
)
from schemas.ledger import Stored
from schemas.names import topic_region_and_account
from schemas.settings import Settings

# Producers' clocks may run this far ahead of ours before a snapshot counts as dated in the future.
CLOCK_SKEW = timedelta(minutes=5)


class SourceStates(Protocol):
    def store_if_newer(self, snapshot: MembershipSnapshot) -> Stored: ...

    def stored_states(self, cluster: str) -> list[MembershipSnapshot]: ...


class AuditLog(Protocol):
    def record(self, cluster: str, entries: Sequence[AuditEntry], retention_days: int) -> None: ...


# Checks an SNS envelope's signature (consumers.signatures in Lambda); raises InvalidRecordError.
VerifyEnvelope = Callable[[Mapping[str, object]], None]


class Outcomes(Protocol):
    """Where the consumer counts what happened (EMF metrics in Lambda)."""

    def count(self, outcome: Outcome, value: int = 1, reason: str | None = None) -> None: ...

    def gauge(self, outcome: Outcome, value: int) -> None: ...

    def seconds(self, outcome: Outcome, value: float) -> None:
        """A duration (replication lag, a source's silence); each call is one value of the metric."""
        ...

    def per_target(self, outcome: Outcome, target_id: str, value: int) -> None:
        """A value for one group or prefix list (the drift observe mode reports), by its id."""
        ...


class Planned(Protocol):
    """A target's plan: pure, fitted to the rule budget (consumers.budget) before anything is written."""

    def quota_error(self) -> RuleQuotaExceededError | None:
        """Why additions wait, if the quota holds some back (they are retried with the record)."""
        ...

    def review(self) -> Review: ...


PlanT = TypeVar("PlanT", bound=Planned)


class Target(Protocol[PlanT]):
    """Where the member addresses go, chosen once from the settings (consumers.bootstrap.target):
    per-address rules in every group, spread over shard groups, or prefix lists the groups reference.
    """

    def observe(self) -> PlanT:
        """Read the actual state, then the desired state (in that order: each target says why), and plan."""
        ...

    def execute(self, plan: PlanT, causes: Sequence[Mapping[str, Any]]) -> None:
        """Make the calls; RuleConflictError when another writer changed something since `observe`."""
        ...


@dataclass(frozen=True)
class ApplyReport:
    """What a batch did. `observing`: the region is in observe mode, so `review` is the plan it logged
    and reported, not one it applied; its acknowledgements say so (docs/operations.md)."""

    applied: tuple[MembershipSnapshot, ...]
    stale: tuple[MembershipSnapshot, ...]
    review: Review
    # Resync requests to deliver again (consumers.resync).
    retry: tuple[ResyncRequest, ...] = ()
    observing: bool = False
    # What this region published that it enforces now (consumers.acknowledgements).
    acknowledged: tuple[Acknowledgement, ...] = ()


class ApplyService(Generic[PlanT]):
    """The consumer: newest version wins per source, then a level-triggered reconcile of the target."""

    def __init__(
        self,
        *,
        settings: Settings,
        states: SourceStates,
        target: Target[PlanT],
        audit: AuditLog,
        outcomes: Outcomes,
        verify: VerifyEnvelope,
        logger: Logger,
        resync: Resync,
        acknowledgements: Acknowledgements,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_conflict_retries: int = 3,
    ) -> None:
        settings.require("security_group_ids", "ports", "peer_topic_arns")
        self._target = target
        self._resync = resync
        self._acknowledgements = acknowledgements
        self._settings = settings
        self._states = states
        self._audit = audit
        self._outcomes = outcomes
        self._verify = verify
        self._logger = logger
        self._clock = clock
        self._max_conflict_retries = max_conflict_retries

    def accept(self, body: str, message_id: str) -> Event:
        """Validate one SQS body (an SNS envelope); reject anything this cluster must not act on."""
        try:
            return self._validate(body)
        except InvalidRecordError as error:
            self._logger.error(
                "record rejected",
                extra={"message_id": message_id, "reason": error.reason, "error": str(error)},
            )
            self._outcomes.count(Outcome.REJECTED, reason=error.reason)
            raise

    def apply(self, events: Sequence[Event]) -> ApplyReport:
        """Store the newest snapshot of each source (if newer than the table's), reconcile once, then
        ask for a resync if the table was empty, answer the batch's resync requests, record the
        acknowledgements of this region's sources, and acknowledge what this region now enforces.

        Events older than the maximum event age are dropped: the next true-up supersedes anything
        merely delayed, and a captured message replayed later cannot act. Additions the quota holds
        back fail the batch (RuleQuotaExceededError), once everything else is done, and then nothing is
        acknowledged: a batch is acknowledged only once its groups (or lists) enforce it.
        """
        fresh = self._drop_expired(events)
        snapshots = [event for event in fresh if isinstance(event, MembershipSnapshot)]
        requests = [event for event in fresh if isinstance(event, ResyncRequest)]
        acknowledgements = [event for event in fresh if isinstance(event, Acknowledgement)]
        stored = self._store(snapshots)
        applied = [snapshot for snapshot, outcome in stored if outcome is not Stored.STALE]
        # A batch of acknowledgements alone changes no source: it needs no reconcile.
        only_acknowledgements = bool(acknowledgements) and not snapshots and not requests
        review, waiting = (Review(groups=()), None) if only_acknowledgements else self._reconcile(applied)
        # An observed plan changed no rule: the audit trail records the snapshots only.
        self._record(applied, () if self._settings.observe else _changes(review))
        # The table had no state before this batch: it is new or was recreated. Its sources' next
        # snapshots would take up to a true-up period; the mesh can send them now.
        first = {snapshot.source.key for snapshot, outcome in stored if outcome is Stored.FIRST}
        if first and len(first) == len(applied) and review.sources <= first:
            self._resync.ask(ResyncReason.EMPTY_TABLE)
        retry = self._resync.answer(requests)
        self._acknowledgements.record(acknowledgements)
        if waiting is not None:
            raise waiting
        acknowledged = self._acknowledgements.acknowledge([snapshot for snapshot, _outcome in stored])
        stale = tuple(snapshot for snapshot, outcome in stored if outcome is Stored.STALE)
        return ApplyReport(
            tuple(applied),
            stale,
            review,
            tuple(retry),
            acknowledged=tuple(acknowledged),
            observing=self._settings.observe,
        )

    def _store(self, snapshots: Sequence[MembershipSnapshot]) -> list[tuple[MembershipSnapshot, Stored]]:
        """Store the newest snapshot of each source, if newer than the table's; what each put did."""
        newest = newest_per_source(snapshots)
        stored = [(snapshot, self._states.store_if_newer(snapshot)) for snapshot in newest.values()]
        for snapshot, outcome in stored:
            self._logger.info(
                "snapshot stale; table already has this version or newer"
                if outcome is Stored.STALE
                else "snapshot applied",
                extra=_snapshot_fields(snapshot),
            )
        coalesced = len(snapshots) - len(newest)
        if coalesced:
            self._logger.info("older snapshots coalesced in batch", extra={"coalesced": coalesced})
        stale = sum(1 for _snapshot, outcome in stored if outcome is Stored.STALE)
        now = self._clock()
        for snapshot, outcome in stored:
            if outcome is not Stored.STALE:
                lag = (now - snapshot.produced_at).total_seconds()
                self._outcomes.seconds(Outcome.REPLICATION_LAG, max(lag, 0.0))
        self._outcomes.count(Outcome.APPLIED, len(stored) - stale)
        self._outcomes.count(Outcome.STALE, stale + coalesced)
        return stored

    def count_invocation(self, *, retried: int, throttled: int) -> None:
        """Records SQS will deliver again, and AWS calls throttled (and retried by botocore) meanwhile."""
        self._outcomes.count(Outcome.RETRIED, retried)
        self._outcomes.count(Outcome.THROTTLED, throttled)

    def plan(self) -> Review:
        """What a reconcile would change now; reads only, and reports quota problems instead of raising."""
        return self._target.observe().review()

    def reconcile(self, causes: Iterable[MembershipSnapshot] = ()) -> Review:
        """Desired from the table, actual from the target; apply the difference, re-planning on conflicts.

        Removals always apply; additions that would pass the quota wait (the plan is fitted before
        anything is written), and then the reconcile fails with RuleQuotaExceededError once the rest is
        applied, so that the records are retried.
        """
        review, waiting = self._reconcile(causes)
        if waiting is not None:
            raise waiting
        return review

    def _reconcile(
        self, causes: Iterable[MembershipSnapshot]
    ) -> tuple[Review, RuleQuotaExceededError | None]:
        cause_fields = [_snapshot_fields(snapshot) for snapshot in causes]
        if self._settings.observe:
            return self._observe(cause_fields), None
        for attempt in range(1, self._max_conflict_retries + 2):
            # Actual and then desired are re-read on every attempt: a conflict means another
            # consumer wrote, and it may have stored a newer snapshot first; a stale desired would
            # revoke the members that snapshot added.
            plan = self._target.observe()
            try:
                self._target.execute(plan, cause_fields)
            except RuleConflictError as conflict:
                self._logger.warning(
                    "group changed under us; re-planning", extra={"attempt": attempt, "error": str(conflict)}
                )
                self._outcomes.count(Outcome.CONFLICT_RETRIED)
                continue
            review = plan.review()
            self._report_health(review)
            waiting = plan.quota_error()
            if waiting is not None:
                self._logger.error(
                    "additions wait: they would pass the rule quota; the rest was applied",
                    extra={"error": str(waiting)},
                )
                self._outcomes.count(Outcome.QUOTA_EXCEEDED)
            return review, waiting
        raise RuleConflictError(
            f"groups kept changing under us for {self._max_conflict_retries + 1} attempts; "
            "the record will be retried"
        )

    def _observe(self, causes: Sequence[Mapping[str, Any]]) -> Review:
        """Observe mode, for every target alike: plan as a reconcile would, log and count the plan, and
        make no call that writes (`execute` is never called, so no hold is recorded either). Additions
        the quota would hold back are logged, not raised: there is nothing to retry."""
        plan = self._target.observe()
        review = plan.review()
        # Every group and list, in sync ones too: a drift of 0 is news to the operator.
        drift = _changes(review)
        for target_id, authorize, revoke in drift:
            self._outcomes.per_target(Outcome.DRIFT_AUTHORIZE, target_id, len(authorize))
            self._outcomes.per_target(Outcome.DRIFT_REVOKE, target_id, len(revoke))
        self._logger.info(
            "observe mode: plan not applied",
            extra={
                "plan": [
                    {"target": target_id, "would_authorize": list(authorize), "would_revoke": list(revoke)}
                    for target_id, authorize, revoke in drift
                ],
                "causes": list(causes),
            },
        )
        waiting = plan.quota_error()
        if waiting is not None:
            self._logger.warning(
                "observe mode: applying would leave additions waiting", extra={"error": str(waiting)}
            )
        self._report_health(review)
        return review

    def _report_health(self, review: Review) -> None:
        """After each reconcile (or observation): the least headroom, and how long ago the least
        recently heard source produced the newest snapshot the table holds of it."""
        if review.headroom is not None:
            self._outcomes.gauge(Outcome.RULE_HEADROOM, review.headroom)
        if review.oldest_heard is not None:
            age = (self._clock() - review.oldest_heard).total_seconds()
            self._outcomes.seconds(Outcome.OLDEST_SOURCE_AGE, max(age, 0.0))

    def _drop_expired(self, events: Sequence[Event]) -> list[Event]:
        oldest = self._clock() - timedelta(seconds=self._settings.max_event_age_seconds)
        fresh: list[Event] = []
        for event in events:
            if _made_at(event) >= oldest:
                fresh.append(event)
                continue
            kind = {MembershipSnapshot: "snapshot", ResyncRequest: "resync request"}.get(
                type(event), "acknowledgement"
            )
            self._logger.warning(
                f"{kind} dropped: older than SGMESH_MAX_EVENT_AGE_SECONDS",
                extra={**_event_fields(event), "made_at": _made_at(event).isoformat()},
            )
        self._outcomes.count(Outcome.EXPIRED, len(events) - len(fresh))
        return fresh

    def _record(
        self,
        applied: Sequence[MembershipSnapshot],
        changes: Sequence[tuple[str, tuple[str, ...], tuple[str, ...]]],
    ) -> None:
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
                group_id=changed,
                authorized=authorized,
                revoked=revoked,
                causes=causes,
            )
            for changed, authorized, revoked in changes
            if authorized or revoked
        ]
        if not entries:
            return
        try:
            self._audit.record(self._settings.cluster, entries, self._settings.event_retention_days)
        except Exception as error:  # the audit trail must never undo or repeat a correct reconcile
            self._logger.error(
                "audit trail write failed", extra={"error": str(error), "entries": len(entries)}
            )

    def _validate(self, body: str) -> Event:
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
        event = parse_event(message)
        if event.cluster != self._settings.cluster:
            raise InvalidRecordError(
                f"cluster {event.cluster!r} is not this deployment's cluster {self._settings.cluster!r}",
                "wrong-cluster",
            )
        origin, what = _origin(event)
        if (origin.region, origin.account) != topic_region_and_account(topic_arn):
            raise InvalidRecordError(
                f"{what} did not come from its own region's topic {topic_arn!r}", "wrong-source"
            )
        if _made_at(event) > self._clock() + CLOCK_SKEW:
            field = {MembershipSnapshot: "produced_at", ResyncRequest: "requested_at"}.get(
                type(event), "acknowledged_at"
            )
            raise InvalidRecordError(
                f"{field} {_made_at(event).isoformat()} is in the future", "produced-in-future"
            )
        return event


def _changes(review: Review) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """What changed where, as the audit records it: each list's entries as the rules they amount to,
    then each group's rules."""
    lists = [
        (item.prefix_list_id, item.as_rules(item.added), item.as_rules(item.removed)) for item in review.lists
    ]
    groups = [
        (
            group.group_id,
            tuple(str(rule.allows) for rule in group.plan.authorize),
            tuple(str(rule.allows) for rule in group.plan.revoke),
        )
        for group in review.groups
    ]
    return lists + groups


def _origin(event: Event) -> tuple[Source | Requester | Acknowledger, str]:
    """Who made the event (checked against its topic's region and account), and how to name them."""
    if isinstance(event, MembershipSnapshot):
        return event.source, f"source {event.source.key!r}"
    if isinstance(event, ResyncRequest):
        return event.requester, f"requester {event.requester.account}/{event.requester.region}"
    return event.acknowledger, f"acknowledger {event.acknowledger.key}"


def _made_at(event: Event) -> datetime:
    if isinstance(event, MembershipSnapshot):
        return event.produced_at
    if isinstance(event, ResyncRequest):
        return event.requested_at
    return event.acknowledged_at


def _event_fields(event: Event) -> dict[str, Any]:
    if isinstance(event, MembershipSnapshot):
        return _snapshot_fields(event)
    if isinstance(event, ResyncRequest):
        return {
            "event_id": str(event.event_id),
            "requester": f"{event.requester.account}/{event.requester.region}",
        }
    return {"event_id": str(event.event_id), "acknowledger": event.acknowledger.key}


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
