"""Pure: which hand-made inbound rules are exactly one sgmesh wants for a current member (to adopt)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from consumers.attribution import MARKER_PREFIX
from schemas.rules import DesiredRule, InboundRule, Permission


@dataclass(frozen=True)
class Adoption:
    """A rule to take over: its id, what it allows, the description it had and the one it gets."""

    rule_id: str
    permission: Permission
    before: str
    after: str


def adoptable(
    rules: Iterable[InboundRule], desired: Mapping[Permission, DesiredRule]
) -> tuple[Adoption, ...]:
    """The unmarked rules whose permission (protocol, ports and a /32 or /128 address) is exactly a
    desired one; each gets the description sgmesh would have written, which names its member's source,
    so that the rule is revoked once that member leaves.

    Any rule with a marker, this cluster's or another's, is never a candidate: another cluster's rule
    is that cluster's, and this cluster's is already managed. A wider CIDR, another port or another
    protocol is no desired permission, so it is never one either.
    """
    found = [
        Adoption(rule.rule_id, rule.permission, rule.description, desired[rule.permission].description)
        for rule in rules
        if rule.permission is not None
        and rule.permission in desired
        and not rule.description.startswith(MARKER_PREFIX)
    ]
    return tuple(sorted(found, key=lambda adoption: adoption.rule_id))
