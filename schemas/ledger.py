"""The producer's ledger of one group: the last version claimed, and the last one published."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LedgerEntry:
    claimed: int = 0
    published: int | None = None
    # Digest of the membership last published; a publish that failed never sets it.
    published_digest: str | None = None
