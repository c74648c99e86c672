"""The audit trail: what each consumer applied and which rules it changed, and why."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict


class AuditKind(StrEnum):
    SNAPSHOT_APPLIED = "snapshot-applied"
    RULES_CHANGED = "rules-changed"
    # A region acknowledged enforcing a version of one of this region's sources.
    ACKNOWLEDGED = "acknowledged"


class AuditEntry(BaseModel):
    """One line of a region's event log; `causes` names the snapshots (source@version) behind it."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    at: AwareDatetime
    kind: AuditKind
    source: str | None = None
    version: int | None = None
    event_id: str | None = None
    cause: str | None = None
    members: int | None = None
    group_id: str | None = None
    authorized: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()
    causes: tuple[str, ...] = ()
    acknowledged_by: str | None = None

    @property
    def causes_sources(self) -> tuple[str, ...]:
        return tuple(cause.rsplit("@", 1)[0] for cause in self.causes)

    @property
    def sort_key(self) -> str:
        """Time-ordered, and unique per entry within a region's log."""
        subject = {
            AuditKind.SNAPSHOT_APPLIED: self.source,
            AuditKind.ACKNOWLEDGED: f"{self.source}#{self.acknowledged_by}",
        }.get(self.kind, self.group_id)
        return f"{self.at.isoformat()}#{self.kind.value}#{subject}#{self.version or ''}"

    def expires_at(self, retention_days: int) -> int:
        """The TTL (epoch seconds) after which DynamoDB drops the entry."""
        return int(self.at.timestamp()) + retention_days * 86_400
