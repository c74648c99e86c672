"""Acknowledgements: a consumer publishes what it enforces after each batch, and records the
acknowledgements of its own region's sources, which admit the launches waiting for them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

from aws_lambda_powertools.logging import Logger

from consumers.metrics import Outcome
from schemas.admission import AckRecord, converged, newest_acknowledgements
from schemas.audit import AuditEntry, AuditKind
from schemas.events import (
    MAX_ACKNOWLEDGED,
    Acknowledgement,
    Acknowledger,
    Enforced,
    Event,
    MembershipSnapshot,
)
from schemas.lifecycle import AdmissionCheck
from schemas.names import topic_region_and_account
from schemas.settings import Settings


class EventTopic(Protocol):
    """This region's own topic (cloud.sns)."""

    def publish(self, event: Event) -> str: ...


class AcknowledgementBook(Protocol):
    """The newest acknowledgement of each region, per source of this region (its own table)."""

    def acknowledgements(self, cluster: str, source: str | None = None) -> list[AckRecord]: ...

    def record_acknowledgement(self, cluster: str, record: AckRecord) -> bool: ...


class AuditLog(Protocol):
    def record(self, cluster: str, entries: Sequence[AuditEntry], retention_days: int) -> None: ...


class LifecycleQueue(Protocol):
    """This region's lifecycle buffer (cloud.sqs): the producer settles waiting launches from it."""

    def send(self, event: Mapping[str, Any], delay_seconds: int = 0) -> str: ...


class Measures(Protocol):
    def count(self, outcome: Outcome, value: int = 1, reason: str | None = None) -> None: ...

    def seconds(self, outcome: Outcome, value: float) -> None: ...


class Acknowledgements:
    """Publishes this region's acknowledgements to its own topic, and keeps the newest of every region's
    for this region's sources in its own table; never a write to another region."""

    def __init__(
        self,
        *,
        settings: Settings,
        topic: EventTopic | None,
        book: AcknowledgementBook,
        audit: AuditLog,
        checks: LifecycleQueue | None,
        outcomes: Measures,
        logger: Logger,
        clock: Callable[[], datetime],
        new_event_id: Callable[[], UUID] = uuid4,
    ) -> None:
        self._settings = settings
        own_topic = settings.own_topic_arn()
        self._account = topic_region_and_account(own_topic)[1] if own_topic else None
        self._topic = topic if own_topic else None
        self._book = book
        self._audit = audit
        self._checks = checks
        self._outcomes = outcomes
        self._logger = logger
        self._clock = clock
        self._new_event_id = new_event_id

    def acknowledge(self, snapshots: Sequence[MembershipSnapshot]) -> list[Acknowledgement]:
        """Publish what this region now enforces of each source the batch held (applied, or stale:
        already applied, so a crash before an earlier acknowledgement is repaired). Raises when SNS
        fails, so that the batch is delivered again and acknowledged then."""
        if not snapshots:
            return []
        if self._topic is None or self._account is None:
            self._logger.warning("no topic of this region is known (SGMESH_TOPIC_ARN); nothing acknowledged")
            return []
        enforced = sorted(
            (Enforced(source=s.source, version=s.version, produced_at=s.produced_at) for s in snapshots),
            key=lambda entry: entry.source.key,
        )
        published = []
        for start in range(0, len(enforced), MAX_ACKNOWLEDGED):
            acknowledgement = Acknowledgement(
                event_id=self._new_event_id(),
                cluster=self._settings.cluster,
                acknowledger=Acknowledger(account=self._account, region=self._settings.region),
                acknowledged_at=self._clock(),
                enforced=tuple(enforced[start : start + MAX_ACKNOWLEDGED]),
                observing=self._settings.observe,
            )
            message_id = self._topic.publish(acknowledgement)
            published.append(acknowledgement)
            self._logger.info(
                "acknowledgement published",
                extra={
                    "event_id": str(acknowledgement.event_id),
                    "message_id": message_id,
                    "enforced": [f"{e.source.key}@{e.version}" for e in acknowledgement.enforced],
                    "observing": acknowledgement.observing,
                },
            )
        return published

    def record(self, acknowledgements: Sequence[Acknowledgement]) -> None:
        """Keep the newest acknowledgement of every region for each of this region's sources; where a
        version became enforced by every peer region, emit the convergence time and have the producer
        settle the launches waiting for it. Acknowledgements of other regions' sources are not ours:
        they are left alone (a filter policy not yet in effect delivers them too)."""
        received: dict[str, list[AckRecord]] = {}
        for acknowledgement in acknowledgements:
            for entry in acknowledgement.enforced:
                if self._is_own(entry):
                    received.setdefault(entry.source.key, []).append(
                        AckRecord(
                            source=entry.source.key,
                            region=acknowledgement.acknowledger.key,
                            version=entry.version,
                            produced_at=entry.produced_at,
                            acknowledged_at=acknowledgement.acknowledged_at,
                        )
                    )
        settled_groups: list[str] = []
        entries: list[AuditEntry] = []
        for source, records in sorted(received.items()):
            written, settles = self._record_source(source, records)
            entries += [_audit_entry(record) for record in written]
            if settles:
                settled_groups.append(source.split("/", 2)[2])
        self._audit_acknowledgements(entries)
        if settled_groups and self._checks is not None and self._settings.holds_launches:
            # Raises if SQS fails: the batch is delivered again, and asks again (see _record_source).
            self._checks.send(AdmissionCheck(tuple(settled_groups)).event())

    def _record_source(self, source: str, records: Sequence[AckRecord]) -> tuple[list[AckRecord], bool]:
        """Write each region's record newer than the table's. Returns them, and whether the producer is
        to settle the source's waiting launches: some record received is of the newest version every
        peer region now enforces. Asked again when the same acknowledgement comes again (a consumer
        that died, or failed to ask, before asking is repaired by the redelivery); a late, older one
        asks nothing. The convergence time is emitted once, when that version moves."""
        cluster = self._settings.cluster
        held = newest_acknowledgements(self._book.acknowledgements(cluster, source))
        newer = [
            record
            for region, record in newest_acknowledgements(records).items()
            if region not in held or record.version > held[region].version
        ]
        written = [record for record in newer if self._book.record_acknowledgement(cluster, record)]
        self._outcomes.count(Outcome.ACKNOWLEDGEMENTS, len(written))
        awaited = self._settings.peer_regions()
        before = converged(held, awaited)
        after = converged(newest_acknowledgements([*held.values(), *written]), awaited)
        if after is None:
            return written, False
        if before is None or after.version > before.version:
            seconds = max((after.acknowledged_at - after.produced_at).total_seconds(), 0.0)
            self._outcomes.seconds(Outcome.CONVERGENCE, seconds)
            self._logger.info(
                "every peer region enforces a newer version",
                extra={"source": source, "version": after.version, "convergence_seconds": seconds},
            )
        return written, any(record.version == after.version for record in records)

    def _audit_acknowledgements(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        try:
            self._audit.record(self._settings.cluster, entries, self._settings.event_retention_days)
        except Exception as error:  # the trail must never cost an acknowledgement its effect
            self._logger.error(
                "audit trail write failed", extra={"error": str(error), "entries": len(entries)}
            )

    def _is_own(self, entry: Enforced) -> bool:
        return (entry.source.region, entry.source.account) == (self._settings.region, self._account)


def _audit_entry(record: AckRecord) -> AuditEntry:
    return AuditEntry(
        at=record.acknowledged_at,
        kind=AuditKind.ACKNOWLEDGED,
        source=record.source,
        version=record.version,
        acknowledged_by=record.region,
    )
