"""The membership snapshot event (v1): the full membership of one source at one version."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.addresses import IPv6Cidr, PrivateIPv4Cidr, PublicIPv4Cidr
from schemas.errors import InvalidRecordError
from schemas.names import AccountId, ClusterName, GroupName, InstanceId, RegionName, Version

SNAPSHOT_TYPE: Final = "sgmesh.membership-snapshot"
SCHEMA_VERSION: Final = 1
# A 1,000-member snapshot stays near 200 KB, under the 256 KB SNS message limit.
MAX_MEMBERS = 1000

# Unknown fields are ignored so regions running different releases can read each other's events.
EVENT_CONFIG = ConfigDict(strict=True, frozen=True, extra="ignore")


class CauseKind(StrEnum):
    LAUNCHING = "launching"
    TERMINATING = "terminating"
    TRUEUP = "trueup"
    RESYNC = "resync"


class Cause(BaseModel):
    """Why the snapshot was taken; lifecycle fields are set when a lifecycle hook fired it."""

    model_config = EVENT_CONFIG

    kind: CauseKind
    instance_id: InstanceId | None = None
    lifecycle_hook: str | None = Field(default=None, max_length=255)
    lifecycle_token: str | None = Field(default=None, max_length=64)


class Source(BaseModel):
    """One Auto Scaling group in one region of one account."""

    model_config = EVENT_CONFIG

    account: AccountId
    region: RegionName
    group: GroupName

    @property
    def key(self) -> str:
        return f"{self.account}/{self.region}/{self.group}"


class Member(BaseModel):
    """One instance and every address known for it, so a mode change needs no new describe."""

    model_config = EVENT_CONFIG

    instance_id: InstanceId
    public_ipv4: PublicIPv4Cidr | None = None
    private_ipv4: PrivateIPv4Cidr | None = None
    ipv6: tuple[IPv6Cidr, ...] = ()
    availability_zone: str | None = Field(default=None, max_length=32)
    lifecycle_state: str | None = Field(default=None, max_length=32)


class MembershipSnapshot(BaseModel):
    """Replace-the-whole-state event: applying the newest version per source is idempotent."""

    model_config = EVENT_CONFIG

    type: Literal["sgmesh.membership-snapshot"] = SNAPSHOT_TYPE
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    cluster: ClusterName
    source: Source
    version: Version
    produced_at: AwareDatetime
    cause: Cause
    members: tuple[Member, ...] = Field(max_length=MAX_MEMBERS)

    @model_validator(mode="after")
    def _one_entry_per_instance(self) -> Self:
        seen: set[str] = set()
        for member in self.members:
            if member.instance_id in seen:
                raise ValueError(f"instance {member.instance_id} is listed twice")
            seen.add(member.instance_id)
        return self

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


def parse_snapshot(raw: str | bytes) -> MembershipSnapshot:
    """Validate a snapshot from JSON; errors name the field and the offending value."""
    try:
        return MembershipSnapshot.model_validate_json(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'snapshot'}: {issue['msg']}"
            + (f" (got {issue['input']!r})" if not isinstance(issue["input"], dict | list) else "")
            for issue in error.errors(include_url=False)
        )
        raise InvalidRecordError(f"not a valid membership snapshot: {problems}") from None
