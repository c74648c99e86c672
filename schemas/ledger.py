"""The producer's ledger of one group: versions claimed and published, and its retirement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How long a group the settings no longer name has its retirement published again by every true-up:
# as long as SQS keeps a message at most (14 days) and as the longest SGMESH_MAX_EVENT_AGE_SECONDS,
# so a region that missed the first retirement (lost delivery, outage, older release) gets another.
# Then the ledger forgets the group (DynamoDB's TTL deletes its item).
RETIREMENT_PERIOD = timedelta(days=14)


def epoch_milliseconds(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class LedgerEntry:
    claimed: int = 0
    published: int | None = None
    # Digest of the membership last published; a publish that failed never sets it.
    published_digest: str | None = None
    # When the group's retirement was first published; None while the settings name the group.
    retired_at: datetime | None = None

    def next_version(self, now: datetime) -> int:
        """A hybrid clock: one past the version read, or the time in milliseconds if that is later.

        A recreated table reads as version 0, and the clock then still puts the next version above
        every one published before; a clock that steps back never moves a version back, the stored one
        does. Versions stay integers that consumers compare as before.
        """
        return max(self.claimed + 1, epoch_milliseconds(now))

    def holds(self, digest: str) -> bool:
        """Whether consumers hold this membership: the last version claimed was published (marked
        after SNS accepted it) with this digest. A claim never marked may have reached SNS all the
        same, with a membership no one recorded, so after one only a new publish is sure."""
        return (
            self.published is not None and self.published == self.claimed and self.published_digest == digest
        )

    def retirement_due(self, now: datetime) -> bool:
        """Whether a true-up publishes the group's retirement (again), once the settings dropped it."""
        return self.retired_at is None or now < self.retired_at + RETIREMENT_PERIOD
