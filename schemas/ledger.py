"""The tables' records: the producer's ledger of one group, and what storing a snapshot did."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class LedgerEntry:
    claimed: int = 0
    published: int | None = None
    # Digest of the membership last published; a publish that failed never sets it.
    published_digest: str | None = None


class Stored(StrEnum):
    """What a consumer's conditional put of a snapshot did to its source's state."""

    FIRST = "first"  # the table had no state of the source: a new source, or a new or recreated table
    NEWER = "newer"  # it replaced an older version
    STALE = "stale"  # nothing: the table holds this version or a newer one
