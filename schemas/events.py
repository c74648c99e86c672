"""The events: the membership snapshot (v1), with the one seam that reads older schema versions into
it, and the resync request (v1) a consumer publishes to ask the mesh for every source's snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.addresses import IPv6Cidr, PrivateIPv4Cidr, PublicIPv4Cidr
from schemas.errors import InvalidRecordError
from schemas.names import AccountId, ClusterName, GroupName, InstanceId, RegionName, Version

SNAPSHOT_TYPE: Final = "sgmesh.membership-snapshot"
SCHEMA_VERSION: Final = 1
RESYNC_REQUEST_TYPE: Final = "sgmesh.resync-request"
RESYNC_SCHEMA_VERSION: Final = 1
# A 1,000-member snapshot stays near 200 KB, under the 256 KB SNS message limit.
MAX_MEMBERS = 1000

# Unknown fields are ignored so regions running different releases can read each other's events.
EVENT_CONFIG = ConfigDict(strict=True, frozen=True, extra="ignore")

# Metric labels (InvalidRecordError.reason) of a snapshot whose schema version this release cannot read.
NEWER_SCHEMA_VERSION = "newer-schema-version"
UNKNOWN_SCHEMA_VERSION = "unknown-schema-version"
INVALID_RESYNC_REQUEST = "invalid-resync-request"

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
# Step n turns a version-n snapshot document into a version n+1 one (docs/events.md, Compatibility).
# Empty: version 1 is the only one sgmesh has published.
UPCASTERS: Final[Mapping[int, Upcaster]] = MappingProxyType({})


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


class Requester(BaseModel):
    """The consumer asking for a resync: its region, of its account (its own topic's)."""

    model_config = EVENT_CONFIG

    account: AccountId
    region: RegionName


class ResyncReason(StrEnum):
    EMPTY_TABLE = "empty-table"  # a consumer found its table without any state: new or recreated
    OPERATOR = "operator"  # `sgmesh resync --region R`


class ResyncRequest(BaseModel):
    """Asks every consumer of the cluster to re-publish, on its own region's topic, the newest stored
    snapshot of each of its region's sources, so that the requester's table catches up at once.

    Published on the requester's own region's topic; its own type, versioned like the snapshot.
    """

    model_config = EVENT_CONFIG

    type: Literal["sgmesh.resync-request"] = RESYNC_REQUEST_TYPE
    schema_version: Literal[1] = RESYNC_SCHEMA_VERSION
    event_id: UUID
    cluster: ClusterName
    requester: Requester
    requested_at: AwareDatetime
    reason: ResyncReason

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


# What travels on the topics.
Event = MembershipSnapshot | ResyncRequest


def parse_event(raw: str | bytes) -> Event:
    """A snapshot (parse_snapshot) or a resync request, by the `type` the message declares."""
    try:
        return parse_snapshot(raw)
    except InvalidRecordError:
        if _declared(raw).get("type") != RESYNC_REQUEST_TYPE:
            raise
    return parse_resync_request(raw)


def parse_resync_request(raw: str | bytes) -> ResyncRequest:
    """Validate a resync request; a newer schema version is refused (there is no older one)."""
    try:
        return ResyncRequest.model_validate_json(raw)
    except ValidationError as error:
        version = _declared(raw).get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > RESYNC_SCHEMA_VERSION:
            raise InvalidRecordError(
                f"not a valid resync request: schema_version: {version} is newer than "
                f"{RESYNC_SCHEMA_VERSION}, the newest this release reads",
                NEWER_SCHEMA_VERSION,
            ) from None
        raise _invalid(error, "resync request", INVALID_RESYNC_REQUEST) from None


def _declared(raw: str | bytes) -> dict[str, Any]:
    """The JSON object a message holds, or an empty one."""
    try:
        document = json.loads(raw)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def parse_snapshot(raw: str | bytes, upcasters: Mapping[int, Upcaster] = UPCASTERS) -> MembershipSnapshot:
    """Validate a snapshot from JSON, upcasting an older schema version first; errors name the field
    and the offending value."""
    # The current version is validated straight from the JSON as it always was; only a document that
    # fails is read again, to see whether it declares another schema version.
    try:
        return MembershipSnapshot.model_validate_json(raw)
    except ValidationError as error:
        document = _other_version_document(raw)
        if document is None:
            raise _invalid(error) from None
    try:
        return MembershipSnapshot.model_validate_json(json.dumps(upcast(document, upcasters)))
    except ValidationError as error:
        raise _invalid(error) from None


def upcast(
    document: dict[str, Any], upcasters: Mapping[int, Upcaster], target: int = SCHEMA_VERSION
) -> dict[str, Any]:
    """The snapshot document brought from its schema version up to `target`, one registered step at a
    time; a newer version, or an older one some step is missing for, is rejected."""
    version = document["schema_version"]
    if version > target:
        raise InvalidRecordError(
            f"not a valid membership snapshot: schema_version: {version} is newer than {target}, the "
            "newest this release reads (upgrade every region's consumer before any producer)",
            NEWER_SCHEMA_VERSION,
        )
    while version < target:
        step = upcasters.get(version)
        if step is None:
            raise InvalidRecordError(
                f"not a valid membership snapshot: schema_version: {version} has no upcaster "
                f"to {version + 1}",
                UNKNOWN_SCHEMA_VERSION,
            )
        try:
            document = step(document)
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidRecordError(
                f"not a valid membership snapshot: schema_version: {version} document could not be "
                f"upcast to {version + 1}: {error!r}"
            ) from None
        version += 1
        document = {**document, "schema_version": version}
    return document


def _other_version_document(raw: str | bytes) -> dict[str, Any] | None:
    """The document if it is a snapshot declaring a schema version other than the current one."""
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("type") != SNAPSHOT_TYPE:
        return None
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version == SCHEMA_VERSION:
        return None
    return document


def _invalid(
    error: ValidationError, kind: str = "membership snapshot", reason: str = "invalid-snapshot"
) -> InvalidRecordError:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in issue['loc']) or kind}: {issue['msg']}"
        + (f" (got {issue['input']!r})" if not isinstance(issue["input"], dict | list) else "")
        for issue in error.errors(include_url=False)
    )
    return InvalidRecordError(f"not a valid {kind}: {problems}", reason)
