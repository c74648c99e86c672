"""The events: the membership snapshot (v2), how it is written, the one seam that reads any version,
the resync request (v1) a consumer publishes to ask the mesh for every source's snapshot, and the
acknowledgement (v1) it publishes once it enforces a batch's snapshots."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal, Self, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.addresses import IPv6Cidr, PrivateIPv4Cidr, PublicIPv4Cidr, in_version_1_bounds
from schemas.errors import InvalidRecordError, SnapshotTooLargeError
from schemas.names import AccountId, ClusterName, GroupName, InstanceId, RegionName, Version

SNAPSHOT_TYPE: Final = "sgmesh.membership-snapshot"
SCHEMA_VERSION: Final = 2
RESYNC_REQUEST_TYPE: Final = "sgmesh.resync-request"
RESYNC_SCHEMA_VERSION: Final = 1
ACKNOWLEDGEMENT_TYPE: Final = "sgmesh.acknowledgement"
ACKNOWLEDGEMENT_SCHEMA_VERSION: Final = 1
# Sources one acknowledgement names at most: a consumer batch holds 10 records as deployed (and at most
# one snapshot per source); a larger batch is acknowledged in several.
MAX_ACKNOWLEDGED = 100
MAX_MEMBERS = 1000
# SNS takes a Message of at most 262,144 bytes, attributes included (docs.aws.amazon.com/sns/latest/dg/
# large-message-payloads.html), and SQS stores at most 262,144 bytes by default (MaximumMessageSize,
# docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html): the
# SNS envelope it stores carries the Message as one escaped JSON string beside about 1.5 KB of SNS's
# own fields. A snapshot is written plain while its escaped form stays under PLAIN_LIMIT, which
# leaves 64 KiB for those fields and any further escaping; beyond it, its members go packed.
DELIVERY_LIMIT: Final = 262_144
PLAIN_LIMIT: Final = DELIVERY_LIMIT - 64 * 1024
# Packed members of 1,000 instances unpack to well under this; more is not a snapshot (nor a bomb).
UNPACKED_LIMIT: Final = 4 * 1024 * 1024
PACKED_MEMBERS = "members_gzip"

# Unknown fields are ignored so regions running different releases can read each other's events.
EVENT_CONFIG = ConfigDict(strict=True, frozen=True, extra="ignore")

# Metric labels (InvalidRecordError.reason) of a snapshot whose schema version this release cannot read.
NEWER_SCHEMA_VERSION = "newer-schema-version"
UNKNOWN_SCHEMA_VERSION = "unknown-schema-version"
INVALID_RESYNC_REQUEST = "invalid-resync-request"
INVALID_ACKNOWLEDGEMENT = "invalid-acknowledgement"

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def version_1_to_2(document: dict[str, Any]) -> dict[str, Any]:
    """Version 2 only added values (a cause kind, wider address ranges) and packed members: every
    version-1 document says the same as version 2. Packed members never existed in version 1, whose
    readers ignore the field: it means nothing there either."""
    return {key: value for key, value in document.items() if key != PACKED_MEMBERS}


# Step n turns a version-n snapshot document into a version n+1 one (docs/events.md, Compatibility).
UPCASTERS: Final[Mapping[int, Upcaster]] = MappingProxyType({1: version_1_to_2})


class CauseKind(StrEnum):
    LAUNCHING = "launching"
    TERMINATING = "terminating"
    TRUEUP = "trueup"
    RESYNC = "resync"
    # The source's region no longer names the group: its final, empty snapshot (since version 2).
    RETIRED = "retired"


# What a version-1 reader knows (it rejects a snapshot with any other cause kind).
VERSION_1_CAUSES = frozenset({CauseKind.LAUNCHING, CauseKind.TERMINATING, CauseKind.TRUEUP, CauseKind.RESYNC})


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
    schema_version: Literal[2] = SCHEMA_VERSION
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
        """The snapshot as it is published and stored (docs/events.md, Compatibility): a version-1
        document when version 1 can say it (readers of both releases take it), and its members packed
        when the plain document would not fit one delivery."""
        document = self.model_dump(mode="json", exclude_none=True)
        if self.says_only_version_1():
            document["schema_version"] = 1
        plain = _json(document)
        if len(json.dumps(plain)) <= PLAIN_LIMIT:
            return plain
        members = document.pop("members")
        document |= {"schema_version": SCHEMA_VERSION, PACKED_MEMBERS: pack_members(members)}
        packed = _json(document)
        if len(json.dumps(packed)) > PLAIN_LIMIT:
            raise SnapshotTooLargeError(
                f"snapshot of {self.source.key} with {len(self.members)} members is {len(packed)} bytes "
                f"even packed, over the {PLAIN_LIMIT} bytes one SNS delivery to SQS can carry"
            )
        return packed

    def says_only_version_1(self) -> bool:
        """Whether a version-1 reader accepts this snapshot and reads the same from it."""
        return self.cause.kind in VERSION_1_CAUSES and all(
            in_version_1_bounds(member.private_ipv4, member.ipv6) for member in self.members
        )


def pack_members(members: list[dict[str, Any]]) -> str:
    """The members' JSON array, gzip-compressed, in base64: a third of the plain size or less."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip format, as gzip reads it
    packed = compressor.compress(_json(members).encode()) + compressor.flush()
    return base64.b64encode(packed).decode("ascii")


def unpack_members(packed: object) -> object:
    """The members a packed document carries; errors name the field."""
    if not isinstance(packed, str):
        raise InvalidRecordError(f"not a valid membership snapshot: {PACKED_MEMBERS}: not a string")
    try:
        decompressor = zlib.decompressobj(31)
        unpacked = decompressor.decompress(base64.b64decode(packed, validate=True), UNPACKED_LIMIT)
        if decompressor.unconsumed_tail:
            raise ValueError(f"unpacks to more than {UNPACKED_LIMIT} bytes")
        return json.loads(unpacked)
    except (binascii.Error, zlib.error, ValueError) as error:
        raise InvalidRecordError(
            f"not a valid membership snapshot: {PACKED_MEMBERS}: not base64 of a gzip-compressed JSON "
            f"array: {error}"
        ) from None


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


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


class Acknowledger(BaseModel):
    """The region (of its account) whose consumer acknowledges: its own topic's."""

    model_config = EVENT_CONFIG

    account: AccountId
    region: RegionName

    @property
    def key(self) -> str:
        return f"{self.account}/{self.region}"


class Enforced(BaseModel):
    """A source's version the acknowledging region's table holds and its groups (or lists) enforce,
    or a newer one: a snapshot found stale was already applied."""

    model_config = EVENT_CONFIG

    source: Source
    version: Version
    # The acknowledged snapshot's own `produced_at`: the mesh convergence time starts there.
    produced_at: AwareDatetime


class Acknowledgement(BaseModel):
    """What one region's consumer enforces after applying a batch: published on its own region's topic,
    routed (subscription filter policies) to the regions of the sources it names, whose launches wait
    for it (docs/architecture.md, The admission barrier)."""

    model_config = EVENT_CONFIG

    type: Literal["sgmesh.acknowledgement"] = ACKNOWLEDGEMENT_TYPE
    schema_version: Literal[1] = ACKNOWLEDGEMENT_SCHEMA_VERSION
    event_id: UUID
    cluster: ClusterName
    acknowledger: Acknowledger
    acknowledged_at: AwareDatetime
    enforced: tuple[Enforced, ...] = Field(min_length=1, max_length=MAX_ACKNOWLEDGED)
    # The region observes (SGMESH_OBSERVE): it stored and planned these versions, its groups enforce
    # nothing. The barrier takes it all the same, so an observing region never holds a launch.
    observing: bool = False

    @model_validator(mode="after")
    def _one_entry_per_source(self) -> Self:
        keys = [entry.source.key for entry in self.enforced]
        if len(set(keys)) != len(keys):
            raise ValueError("a source is acknowledged twice")
        return self

    @property
    def source_regions(self) -> tuple[str, ...]:
        """The regions of the acknowledged sources: the `source_regions` attribute subscriptions filter on."""
        return tuple(sorted({entry.source.region for entry in self.enforced}))

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


# What travels on the topics.
Event = MembershipSnapshot | ResyncRequest | Acknowledgement


def parse_event(raw: str | bytes) -> Event:
    """A snapshot (parse_snapshot), a resync request or an acknowledgement, by the `type` the message
    declares."""
    try:
        return parse_snapshot(raw)
    except InvalidRecordError:
        declared = _declared(raw).get("type")
        if declared == RESYNC_REQUEST_TYPE:
            return _parse_versioned(
                raw, ResyncRequest, RESYNC_SCHEMA_VERSION, "resync request", INVALID_RESYNC_REQUEST
            )
        if declared == ACKNOWLEDGEMENT_TYPE:
            return _parse_versioned(
                raw,
                Acknowledgement,
                ACKNOWLEDGEMENT_SCHEMA_VERSION,
                "acknowledgement",
                INVALID_ACKNOWLEDGEMENT,
            )
        raise


def parse_resync_request(raw: str | bytes) -> ResyncRequest:
    """Validate a resync request; a newer schema version is refused (there is no older one)."""
    return _parse_versioned(
        raw, ResyncRequest, RESYNC_SCHEMA_VERSION, "resync request", INVALID_RESYNC_REQUEST
    )


def parse_acknowledgement(raw: str | bytes) -> Acknowledgement:
    """Validate an acknowledgement; a newer schema version is refused (there is no older one)."""
    return _parse_versioned(
        raw, Acknowledgement, ACKNOWLEDGEMENT_SCHEMA_VERSION, "acknowledgement", INVALID_ACKNOWLEDGEMENT
    )


EventT = TypeVar("EventT", ResyncRequest, Acknowledgement)


def _parse_versioned(raw: str | bytes, model: type[EventT], newest: int, kind: str, reason: str) -> EventT:
    """Validate an event of a type with one schema version so far: a newer one is refused by name."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        version = _declared(raw).get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > newest:
            raise InvalidRecordError(
                f"not a valid {kind}: schema_version: {version} is newer than {newest}, the newest this "
                "release reads",
                NEWER_SCHEMA_VERSION,
            ) from None
        raise _invalid(error, kind, reason) from None


def _declared(raw: str | bytes) -> dict[str, Any]:
    """The JSON object a message holds, or an empty one."""
    try:
        document = json.loads(raw)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def parse_snapshot(raw: str | bytes, upcasters: Mapping[int, Upcaster] = UPCASTERS) -> MembershipSnapshot:
    """Validate a snapshot from JSON, upcasting an older schema version and unpacking packed members
    first; errors name the field and the offending value."""
    # A plain document of the current version is validated straight from the JSON; the quick look
    # first spares the others (version-1 documents are most of what producers publish) a failed one.
    document = _document_to_convert(raw)
    if document is None:
        try:
            return MembershipSnapshot.model_validate_json(raw)
        except ValidationError as error:
            raise _invalid(error) from None
    document = upcast(document, upcasters)
    if PACKED_MEMBERS in document:
        if "members" in document:
            raise InvalidRecordError(
                f"not a valid membership snapshot: members and {PACKED_MEMBERS} are both set"
            )
        document = {**document, "members": unpack_members(document.pop(PACKED_MEMBERS))}
    try:
        return MembershipSnapshot.model_validate_json(json.dumps(document))
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


def _document_to_convert(raw: str | bytes) -> dict[str, Any] | None:
    """The document if it is a snapshot declaring a schema version other than the current one, or
    packing its members."""
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("type") != SNAPSHOT_TYPE:
        return None
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        return None
    if version == SCHEMA_VERSION and PACKED_MEMBERS not in document:
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
