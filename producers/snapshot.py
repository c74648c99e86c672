"""Pure: turn what AWS says about a group into the members of its next snapshot."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from schemas.addresses import ipv6_cidr, private_ipv4_cidr, public_ipv4_cidr
from schemas.events import Member
from schemas.inventory import GroupInstance, InstanceAddresses
from schemas.settings import AddressMode

# Instances on their way out (or parked in a warm pool) are not members.
LEAVING_STATES = frozenset(
    {"Terminating", "Terminating:Wait", "Terminating:Proceed", "Terminated", "Detaching", "Detached"}
)
# A member's address fields, each with the check the snapshot's schema makes of it.
ADDRESS_FIELDS: Mapping[str, Callable[[str], str]] = {
    "public_ipv4": public_ipv4_cidr,
    "private_ipv4": private_ipv4_cidr,
    "ipv6": ipv6_cidr,
}


def is_member_state(lifecycle_state: str) -> bool:
    return lifecycle_state not in LEAVING_STATES and not lifecycle_state.startswith("Warmed:")


def used_fields(mode: AddressMode) -> frozenset[str]:
    """The address fields whose addresses the mode turns into rules (AddressMode.pick decides)."""
    probes = {"public_ipv4": ("x", None, ()), "private_ipv4": (None, "x", ()), "ipv6": (None, None, ("x",))}
    return frozenset(field for field, probe in probes.items() if mode.pick(*probe))


@dataclass(frozen=True)
class Unusable:
    """An address the snapshot's schema refuses, and why."""

    instance_id: str
    field: str
    address: str
    reason: str


@dataclass(frozen=True)
class Selection:
    members: tuple[Member, ...]
    # Instances left out: an address the mode turns into rules is unusable (a member is never admitted
    # by half, nor the whole group refused for one instance).
    left_out: tuple[Unusable, ...] = ()
    # Addresses left out of a member: the mode does not use their field, so they change no rule.
    dropped: tuple[Unusable, ...] = ()

    @property
    def left_out_ids(self) -> frozenset[str]:
        return frozenset(unusable.instance_id for unusable in self.left_out)


def select_members(
    instances: Iterable[GroupInstance], addresses: Mapping[str, InstanceAddresses], mode: AddressMode
) -> Selection:
    """Members: instances whose current state keeps them in the group and that already have an
    address for the mode. The state decides, never an action about the instance: a lifecycle event
    may be delivered again long after the instance came back into service."""
    members: list[Member] = []
    left_out: list[Unusable] = []
    dropped: list[Unusable] = []
    used = used_fields(mode)
    for instance in instances:
        known = addresses.get(instance.instance_id)
        if not is_member_state(instance.lifecycle_state) or known is None:
            continue
        valid, unusable = _checked(known)
        if any(problem.field in used for problem in unusable):
            left_out.extend(problem for problem in unusable if problem.field in used)
            continue
        dropped.extend(unusable)
        public, private, ipv6 = valid["public_ipv4"], valid["private_ipv4"], valid["ipv6"]
        if not mode.pick(public[0] if public else None, private[0] if private else None, ipv6):
            continue  # no address for the mode yet: not a member until it has one
        members.append(
            Member(
                instance_id=instance.instance_id,
                public_ipv4=public[0] if public else None,
                private_ipv4=private[0] if private else None,
                ipv6=tuple(ipv6),
                availability_zone=instance.availability_zone,
                lifecycle_state=instance.lifecycle_state,
            )
        )
    return Selection(
        tuple(sorted(members, key=lambda member: member.instance_id)), tuple(left_out), tuple(dropped)
    )


def _checked(known: InstanceAddresses) -> tuple[dict[str, list[str]], list[Unusable]]:
    """Each field's addresses as host CIDRs that pass the schema's check, and those that do not."""
    written = {
        "public_ipv4": [f"{known.public_ipv4}/32"] if known.public_ipv4 else [],
        "private_ipv4": [f"{known.private_ipv4}/32"] if known.private_ipv4 else [],
        "ipv6": [f"{address}/128" for address in known.ipv6],
    }
    valid: dict[str, list[str]] = {field: [] for field in written}
    unusable: list[Unusable] = []
    for field, cidrs in written.items():
        for cidr in cidrs:
            try:
                valid[field].append(ADDRESS_FIELDS[field](cidr))
            except ValueError as error:
                unusable.append(Unusable(known.instance_id, field, cidr, str(error)))
    return valid, unusable


# What a consumer turns into rules; lifecycle state and zone change nothing downstream.
DIGESTED_FIELDS = {"instance_id", "public_ipv4", "private_ipv4", "ipv6"}


def membership_digest(members: tuple[Member, ...]) -> str:
    """Identifies a membership by its instances and their addresses, whatever the version or cause."""
    canonical = json.dumps([member.model_dump(mode="json", include=DIGESTED_FIELDS) for member in members])
    return hashlib.sha256(canonical.encode()).hexdigest()
