"""What a consumer of the release before schema version 2 reads (schemas/events.py and addresses.py at
8428fa3, the last release publishing version 1), kept to prove what such a consumer does with what
this release publishes while regions run mixed releases (docs/events.md, Compatibility)."""

from __future__ import annotations

import json
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from schemas.addresses import PRIVATE_IPV4_RANGES, host_network, public_ipv4_cidr
from schemas.names import AccountId, ClusterName, GroupName, InstanceId, RegionName, Version

CONFIG = ConfigDict(strict=True, frozen=True, extra="ignore")


def _private_ipv4_cidr(value: str) -> str:
    network = host_network(value)
    address = network.network_address
    if not isinstance(address, IPv4Address) or not any(address in r for r in PRIVATE_IPV4_RANGES):
        raise ValueError(f"{value!r} is not a private IPv4 address")
    return str(network)


def _ipv6_cidr(value: str) -> str:
    network = host_network(value)
    if not isinstance(network.network_address, IPv6Address) or not network.network_address.is_global:
        raise ValueError(f"{value!r} is not a global IPv6 address")
    return str(network)


class CauseKind(StrEnum):
    LAUNCHING = "launching"
    TERMINATING = "terminating"
    TRUEUP = "trueup"
    RESYNC = "resync"


class Cause(BaseModel):
    model_config = CONFIG

    kind: CauseKind
    instance_id: InstanceId | None = None
    lifecycle_hook: str | None = Field(default=None, max_length=255)
    lifecycle_token: str | None = Field(default=None, max_length=64)


class Source(BaseModel):
    model_config = CONFIG

    account: AccountId
    region: RegionName
    group: GroupName


class Member(BaseModel):
    model_config = CONFIG

    instance_id: InstanceId
    public_ipv4: Annotated[str, AfterValidator(public_ipv4_cidr)] | None = None
    private_ipv4: Annotated[str, AfterValidator(_private_ipv4_cidr)] | None = None
    ipv6: tuple[Annotated[str, AfterValidator(_ipv6_cidr)], ...] = ()
    availability_zone: str | None = Field(default=None, max_length=32)
    lifecycle_state: str | None = Field(default=None, max_length=32)


class MembershipSnapshot(BaseModel):
    model_config = CONFIG

    type: Literal["sgmesh.membership-snapshot"] = "sgmesh.membership-snapshot"
    schema_version: Literal[1] = 1
    event_id: UUID
    cluster: ClusterName
    source: Source
    version: Version
    produced_at: AwareDatetime
    cause: Cause
    members: tuple[Member, ...] = Field(max_length=1000)

    @model_validator(mode="after")
    def _one_entry_per_instance(self) -> Self:
        ids = [member.instance_id for member in self.members]
        if len(set(ids)) != len(ids):
            raise ValueError("an instance is listed twice")
        return self


def read(raw: str) -> MembershipSnapshot | str:
    """The snapshot that release applied, or the reason it rejected the record (its metric label)."""
    try:
        return MembershipSnapshot.model_validate_json(raw)
    except ValidationError:
        version = json.loads(raw).get("schema_version")
        return "newer-schema-version" if isinstance(version, int) and version > 1 else "invalid-snapshot"
