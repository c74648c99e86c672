"""Pure: turn what AWS says about a group into the members of its next snapshot."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping

from schemas.events import Member
from schemas.inventory import GroupInstance, InstanceAddresses
from schemas.settings import AddressMode

# Instances on their way out (or parked in a warm pool) are not members.
LEAVING_STATES = frozenset(
    {"Terminating", "Terminating:Wait", "Terminating:Proceed", "Terminated", "Detaching", "Detached"}
)


def is_member_state(lifecycle_state: str) -> bool:
    return lifecycle_state not in LEAVING_STATES and not lifecycle_state.startswith("Warmed:")


def has_mode_address(addresses: InstanceAddresses, mode: AddressMode) -> bool:
    """An instance is a member once it has an address the mode admits: a member always gets rules."""
    return bool(mode.pick(addresses.public_ipv4, addresses.private_ipv4, addresses.ipv6))


def select_members(
    instances: Iterable[GroupInstance],
    addresses: Mapping[str, InstanceAddresses],
    mode: AddressMode,
    leaving: Collection[str] = (),
) -> tuple[Member, ...]:
    """Members: instances that stay in the group and already have an address for the mode."""
    members = []
    for instance in instances:
        known = addresses.get(instance.instance_id)
        if (
            instance.instance_id in leaving
            or not is_member_state(instance.lifecycle_state)
            or known is None
            or not has_mode_address(known, mode)
        ):
            continue
        members.append(
            Member(
                instance_id=instance.instance_id,
                public_ipv4=_host(known.public_ipv4, 32),
                private_ipv4=_host(known.private_ipv4, 32),
                ipv6=tuple(f"{address}/128" for address in known.ipv6),
                availability_zone=instance.availability_zone,
                lifecycle_state=instance.lifecycle_state,
            )
        )
    return tuple(sorted(members, key=lambda member: member.instance_id))


def _host(address: str | None, prefix: int) -> str | None:
    return f"{address}/{prefix}" if address else None


# What a consumer turns into rules; lifecycle state and zone change nothing downstream.
DIGESTED_FIELDS = {"instance_id", "public_ipv4", "private_ipv4", "ipv6"}


def membership_digest(members: tuple[Member, ...]) -> str:
    """Identifies a membership by its instances and their addresses, whatever the version or cause."""
    canonical = json.dumps([member.model_dump(mode="json", include=DIGESTED_FIELDS) for member in members])
    return hashlib.sha256(canonical.encode()).hexdigest()
