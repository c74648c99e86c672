"""Pure: which source a managed rule or prefix-list entry stands for, and which of them may stay."""

from __future__ import annotations

import re
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from schemas.events import Source

MARKER_PREFIX = "sgmesh:"
DESCRIPTION_LIMIT = 255
# Characters AWS accepts in a rule description; anything else in a group name is replaced.
DESCRIPTION_FORBIDDEN = re.compile(r"[^a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]")
# What follows the marker: `<account>/<region>/<group>/<instance>`, or, as releases before the
# account was added wrote it, `<region>/<group>/<instance>`. The group may itself contain "/".
_SOURCE_AND_INSTANCE = re.compile(
    r"(?:(?P<account>[0-9]{12})/)?(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)/(?P<group>.+)/i-[0-9a-f]{8,17}"
)
# The hold of the marked rules and entries whose description names no source.
UNATTRIBUTED = "unattributed"

Item = TypeVar("Item", bound=Hashable)


def marker(cluster: str) -> str:
    return f"{MARKER_PREFIX}{cluster}"


def spelled(text: str) -> str:
    """How a description spells a name: AWS refuses some characters, which become "_"."""
    return DESCRIPTION_FORBIDDEN.sub("_", text)


def describe_member(cluster: str, source: Source, instance_id: str) -> str:
    """`sgmesh:<cluster> <account>/<region>/<group>/<instance>`: the marker, then the source (so that
    a consumer can tell whose rule it is without its table) and the instance (for the operator)."""
    text = f"{marker(cluster)} {source.account}/{source.region}/{source.group}/{instance_id}"
    return spelled(text)[:DESCRIPTION_LIMIT]


@dataclass(frozen=True, order=True)
class SourceLabel:
    """The source a description names, as it names it: the group as spelled there, and no account in
    descriptions written before the account was added (such a label names the group in any account)."""

    region: str
    group: str
    account: str | None = None

    @property
    def key(self) -> str:
        """How the consumer's table records a hold on this source's rules."""
        return "/".join(part for part in (self.account, self.region, self.group) if part is not None)

    def among(self, peers: Collection[tuple[str, str]]) -> bool:
        """Whether a peer topic, given as (region, account), is this source's own region's topic."""
        return any(region == self.region and self.account in (None, account) for region, account in peers)


def attribute(cluster: str, description: str) -> SourceLabel | None:
    """The source a marked description names; None when it names none (written by hand, or cut at
    the 255 characters AWS allows, which only a group name of about 200 characters reaches)."""
    head, _space, rest = description.partition(" ")
    found = _SOURCE_AND_INSTANCE.fullmatch(rest) if head == marker(cluster) else None
    if found is None:
        return None
    return SourceLabel(found["region"], found["group"], found["account"])


@dataclass(frozen=True)
class Holding(Generic[Item]):
    """What becomes of the managed rules (or entries) nobody's snapshot wants.

    `keep` are those to leave in place: their source has not been heard from (no snapshot in the
    table: a new or recreated table), or their description names no source, for at most the
    maximum event age since the consumer first kept them. `start` are the holds to record from now,
    `clear` the recorded holds that hold nothing any more. Decided without the recorded holds (none
    given), `start` says whether there are any to read.
    """

    keep: frozenset[Item] = frozenset()
    start: frozenset[str] = frozenset()
    clear: frozenset[str] = frozenset()


def hold(
    cluster: str,
    unwanted: Mapping[Item, str],
    *,
    counted: Iterable[Source],
    peers: Collection[tuple[str, str]],
    holds: Mapping[str, datetime],
    now: datetime,
    max_silence: timedelta,
) -> Holding[Item]:
    """Decide, for each managed item no snapshot wants (item -> its description), whether it goes.

    - Its source's region and account match no peer topic: the source was removed; it goes.
    - The table holds a snapshot of its source (`counted`): that snapshot says it is gone; it goes.
    - Otherwise nothing says it is gone: it stays, for at most `max_silence` after the consumer first
      kept an item of that source (`holds`, by SourceLabel.key, or UNATTRIBUTED for a description
      that names no source). A source silent that long is gone too: every region's true-up publishes
      far more often.
    """
    known = _Known(counted)
    keep: set[Item] = set()
    held: set[str] = set()
    for item, description in unwanted.items():
        key = _hold_key(cluster, description, known, peers)
        if key is None:
            continue
        held.add(key)
        since = holds.get(key)
        if since is None or now - since <= max_silence:
            keep.add(item)
    return Holding(frozenset(keep), frozenset(held - holds.keys()), frozenset(holds.keys() - held))


class _Known:
    """The sources the table has a snapshot of, as descriptions spell them, with and without account."""

    def __init__(self, sources: Iterable[Source]) -> None:
        self._labels: set[SourceLabel] = set()
        for source in sources:
            group = spelled(source.group)
            self._labels |= {
                SourceLabel(source.region, group, source.account),
                SourceLabel(source.region, group),
            }

    def __contains__(self, label: SourceLabel) -> bool:
        return label in self._labels


def _hold_key(
    cluster: str, description: str, known: _Known, peers: Collection[tuple[str, str]]
) -> str | None:
    """The hold an unwanted item falls under, or None when it is known to be gone."""
    label = attribute(cluster, description)
    if label is None:
        return UNATTRIBUTED
    if not label.among(peers) or label in known:
        return None
    return label.key


@dataclass(frozen=True)
class SourceFacts:
    """What a reconcile learned of the sources: those whose stored snapshots its desired state counts,
    the stored states of sources that are no longer peers (to forget), and the holds to start and
    clear; the last two are recorded once its calls are made."""

    counted: frozenset[str] = frozenset()
    forgotten: frozenset[str] = frozenset()
    start: frozenset[str] = frozenset()
    clear: frozenset[str] = frozenset()
    # The produced_at of the least recently heard counted source (consumers.sources.oldest_heard).
    oldest_heard: datetime | None = None
