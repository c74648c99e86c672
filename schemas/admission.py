"""The admission barrier's records and decisions: which version of a source each region acknowledged
enforcing, the launches waiting for them, and when a launch is admitted or timed out."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True)
class AckRecord:
    """The newest version of one source a region acknowledged enforcing, and when (`region` is
    `<account>/<region>`, the acknowledging consumer's)."""

    source: str
    region: str
    version: int
    produced_at: datetime
    acknowledged_at: datetime


def newest_acknowledgements(records: Iterable[AckRecord]) -> dict[str, AckRecord]:
    """Per region, its record of the highest version; of two of the same version, the first made.

    Newest-wins, like the snapshots: duplicates, reordering and an older version acknowledged after a
    newer one change nothing, whatever order the records come in.
    """
    newest: dict[str, AckRecord] = {}
    for record in records:
        held = newest.get(record.region)
        if held is None or (record.version, held.acknowledged_at) > (held.version, record.acknowledged_at):
            newest[record.region] = record
    return newest


def converged(acks: Mapping[str, AckRecord], awaited: Collection[str]) -> AckRecord | None:
    """The record of the newest version every awaited region enforces (the lowest of their newest, the
    last of them to acknowledge it if several); None while one of them has acknowledged nothing."""
    if not awaited or any(region not in acks for region in awaited):
        return None
    return min(
        (acks[region] for region in awaited), key=lambda r: (r.version, -r.acknowledged_at.timestamp())
    )


class AdmissionStatus(StrEnum):
    PENDING = "pending"
    ADMITTED = "admitted"  # every awaited region acknowledged a version that admits the instance
    TIMED_OUT = "timed-out"  # completed at the admission timeout, some regions still missing


@dataclass(frozen=True)
class Admission:
    """A launch waiting at the hook until every peer region enforces `version` of its group (the first
    version published with the instance in it) or a newer one."""

    group: str
    instance_id: str
    hook_name: str
    token: str
    version: int
    deadline: datetime
    status: AdmissionStatus = AdmissionStatus.PENDING

    def settled(self, status: AdmissionStatus) -> Admission:
        return replace(self, status=status)


class Verdict(StrEnum):
    WAIT = "wait"
    ADMIT = "admit"
    TIME_OUT = "time-out"


def missing_regions(
    admission: Admission, acks: Mapping[str, AckRecord], awaited: Collection[str]
) -> list[str]:
    """The awaited regions that have not acknowledged the admission's version or a newer one."""
    return sorted(
        region for region in awaited if region not in acks or acks[region].version < admission.version
    )


def verdict(
    admission: Admission, acks: Mapping[str, AckRecord], awaited: Collection[str], *, deadline_passed: bool
) -> Verdict:
    """Admit once no awaited region is missing; time out once its deadline passed (the delayed message
    that says so is the timer: no clock of this host is compared); else wait. A region removed from the
    peers is no longer awaited; a settled admission is never decided again."""
    if admission.status is not AdmissionStatus.PENDING:
        return Verdict.WAIT
    if not missing_regions(admission, acks, awaited):
        return Verdict.ADMIT
    return Verdict.TIME_OUT if deadline_passed else Verdict.WAIT
