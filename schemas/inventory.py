"""What AWS reports about a group's instances, before it becomes a snapshot's members."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupInstance:
    """An instance as the Auto Scaling group lists it."""

    instance_id: str
    lifecycle_state: str
    availability_zone: str | None = None


@dataclass(frozen=True)
class InstanceAddresses:
    """What EC2 knows of an instance's addresses (bare IPs, as EC2 reports them)."""

    instance_id: str
    public_ipv4: str | None = None
    private_ipv4: str | None = None
    ipv6: tuple[str, ...] = ()
