"""Pure: what a region leaving the mesh must revoke in its own groups, and whom it waits for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from consumers.reconcile import is_marked
from schemas.rules import InboundRule


def revocations(cluster: str, rules: Iterable[InboundRule], own_lists: Iterable[str]) -> list[InboundRule]:
    """Every rule sgmesh wrote for this cluster (its marker opens the description: addresses and
    references alike), and every reference to the stack's own prefix lists, which CloudFormation cannot
    delete while a group references them (EC2 drops a reference's description on some paths, so the
    list decides, not the marker). Anything else is an operator's rule and stays."""
    lists = set(own_lists)
    return [
        rule
        for rule in rules
        if is_marked(rule, cluster) or (rule.reference is not None and rule.reference.prefix_list_id in lists)
    ]


@dataclass(frozen=True)
class Lagging:
    """A region that has not yet applied the leaving region's retirement of one source."""

    region: str
    source: str
    applied: int | None
    retired: int

    def __str__(self) -> str:
        held = "no snapshot" if self.applied is None else f"version {self.applied}"
        return f"{self.region} holds {held} of {self.source}, retired at version {self.retired}"


def lagging(retired: Mapping[str, int], applied: Mapping[str, Mapping[str, int]]) -> list[Lagging]:
    """Each (region, source) whose applied version is below the retirement's: `retired` maps source key
    -> retired version; `applied`, region -> source key -> the version its table holds."""
    return [
        Lagging(region, source, held.get(source), version)
        for region, held in sorted(applied.items())
        for source, version in sorted(retired.items())
        if held.get(source, 0) < version
    ]
