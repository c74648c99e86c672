"""What the consumer's table knows of the sources, and its holds on the rules of those it does not."""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from consumers.attribution import Holding, SourceFacts, hold
from schemas.events import CauseKind, MembershipSnapshot
from schemas.names import topic_region_and_account
from schemas.settings import Settings

Item = TypeVar("Item", bound=Hashable)


class SourceRecords(Protocol):
    """The consumer's own table: newest snapshots per source, and holds by source label."""

    def stored_states(self, cluster: str) -> list[MembershipSnapshot]: ...

    def forget_states(self, cluster: str, source_keys: Collection[str]) -> None: ...

    def holds(self, cluster: str) -> dict[str, datetime]: ...

    def record_holds(
        self,
        cluster: str,
        *,
        start: Collection[str],
        clear: Collection[str],
        at: datetime,
        keep_for: timedelta,
    ) -> None: ...


@dataclass(frozen=True)
class Sources:
    """The table's snapshots of the peers' sources (what the desired state is built from), and the keys
    of the states of sources no longer among the peers."""

    counted: tuple[MembershipSnapshot, ...]
    forgotten: frozenset[str]


def oldest_heard(states: Collection[MembershipSnapshot]) -> datetime | None:
    """When the least recently heard source produced the newest snapshot held of it. A retired group
    is heard from no more once its region stops re-publishing the retirement: it does not count."""
    live = [state.produced_at for state in states if state.cause.kind is not CauseKind.RETIRED]
    return min(live, default=None)


class SourceBook:
    """Reads the sources for a target's `observe`, decides which unwanted rules or entries stay
    (consumers.attribution), and records what it learned once the target's calls are made."""

    def __init__(self, settings: Settings, records: SourceRecords, clock: Callable[[], datetime]) -> None:
        self._cluster = settings.cluster
        self._peers = frozenset(topic_region_and_account(arn) for arn in settings.peer_topic_arns)
        self._max_silence = timedelta(seconds=settings.max_event_age_seconds)
        self._records = records
        self._clock = clock

    def read(self) -> Sources:
        counted: list[MembershipSnapshot] = []
        forgotten: set[str] = set()
        for state in self._records.stored_states(self._cluster):
            if (state.source.region, state.source.account) in self._peers:
                counted.append(state)
            else:
                forgotten.add(state.source.key)
        return Sources(tuple(counted), frozenset(forgotten))

    def hold(self, sources: Sources, unwanted: Mapping[Item, str]) -> tuple[Holding[Item], SourceFacts]:
        """Which unwanted items (item -> description) stay; the recorded holds are read only when one
        of them needs a hold, so a consumer that knows every source pays no call for this."""
        counted = [state.source for state in sources.counted]

        def decide(holds: Mapping[str, datetime]) -> Holding[Item]:
            return hold(
                self._cluster,
                unwanted,
                counted=counted,
                peers=self._peers,
                holds=holds,
                now=self._clock(),
                max_silence=self._max_silence,
            )

        holding = decide({})
        if holding.start:
            holding = decide(self._records.holds(self._cluster))
        facts = SourceFacts(
            counted=frozenset(state.source.key for state in sources.counted),
            forgotten=sources.forgotten,
            start=holding.start,
            clear=holding.clear,
            oldest_heard=oldest_heard(sources.counted),
        )
        return holding, facts

    def settle(self, facts: SourceFacts) -> None:
        """Forget the states of former peers and record the holds, once the target's calls are made:
        a reconcile that fails before then records nothing and starts over."""
        if facts.forgotten:
            self._records.forget_states(self._cluster, facts.forgotten)
        if facts.start or facts.clear:
            self._records.record_holds(
                self._cluster,
                start=facts.start,
                clear=facts.clear,
                at=self._clock(),
                keep_for=2 * self._max_silence,
            )
