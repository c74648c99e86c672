"""Pure: the newest-version-wins fold over snapshots, per source."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.events import MembershipSnapshot


def newest_per_source(snapshots: Iterable[MembershipSnapshot]) -> dict[str, MembershipSnapshot]:
    """Keep, for each source, the snapshot with the highest version (duplicates collapse)."""
    newest: dict[str, MembershipSnapshot] = {}
    for snapshot in snapshots:
        if supersedes(snapshot, newest.get(snapshot.source.key)):
            newest[snapshot.source.key] = snapshot
    return newest


def supersedes(incoming: MembershipSnapshot, stored: MembershipSnapshot | None) -> bool:
    """Newer version wins; the table's conditional write enforces the same rule in DynamoDB."""
    return stored is None or incoming.version > stored.version
