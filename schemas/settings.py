"""The deployment's settings: SGMESH_* environment variables read once into one frozen model."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from schemas.errors import SettingsError
from schemas.names import (
    ClusterName,
    GroupName,
    PrefixListId,
    RegionName,
    SecurityGroupId,
    TableName,
    TopicArn,
    topic_region_and_account,
)

PORT_SPEC = re.compile(
    r"^(?:(?P<protocol>tcp|udp):(?P<from_port>[0-9]{1,5})(?:-(?P<to_port>[0-9]{1,5}))?"
    r"|(?P<icmp>icmpv6|icmp)(?::(?P<type>[0-9]{1,3})(?::(?P<code>[0-9]{1,3}))?)?"
    r"|(?P<all>all))$"
)
PORT_SPEC_FORMS = (
    "tcp:PORT, tcp:FROM-TO, udp:PORT, udp:FROM-TO, icmp[:TYPE[:CODE]], icmpv6[:TYPE[:CODE]], all"
)
# EC2's "any" for an ICMP type or code, and the ports of an all-traffic rule.
ANY = -1
ICMP_MAX = 255


class AddressMode(StrEnum):
    """Which of a member's addresses the rules admit."""

    PUBLIC = "public"
    PRIVATE = "private"
    IPV6 = "ipv6"
    DUAL_STACK = "dual-stack"  # public IPv4 and IPv6

    def pick(self, public_ipv4: str | None, private_ipv4: str | None, ipv6: Sequence[str]) -> tuple[str, ...]:
        """The addresses of one instance this mode admits, each to get its own rules; none = no member.

        Dual-stack admits an instance with either family, not only one with both: while a fleet moves
        to IPv6, an instance launched in a subnet without IPv6 still serves the cluster over IPv4, and
        requiring both would cut it off.
        """
        match self:
            case AddressMode.PUBLIC:
                chosen: tuple[str | None, ...] = (public_ipv4,)
            case AddressMode.PRIVATE:
                chosen = (private_ipv4,)
            case AddressMode.IPV6:
                chosen = tuple(ipv6)
            case AddressMode.DUAL_STACK:
                chosen = (public_ipv4, *ipv6)
        return tuple(address for address in chosen if address)


class TargetMode(StrEnum):
    """Where the member addresses go: rules in the groups, spread over shard groups, or a prefix list."""

    SECURITY_GROUP = "security-group"
    SHARDED = "sharded"
    PREFIX_LIST = "prefix-list"


class PortSpec(BaseModel):
    """What every member may reach: `tcp:7000-7001`, `udp:53`, `icmp`, `icmp:8`, `icmp:3:4`, `all`...

    The two numbers are EC2's FromPort and ToPort: a port range for tcp and udp, the type and code for
    icmp and icmpv6 (-1 = any), and -1 for all traffic.
    """

    model_config = ConfigDict(strict=True, frozen=True)

    protocol: Literal["tcp", "udp", "icmp", "icmpv6", "all"]
    from_port: int = Field(default=ANY, ge=ANY, le=65535)
    to_port: int = Field(default=ANY, ge=ANY, le=65535)

    @model_validator(mode="after")
    def _fits_protocol(self) -> Self:
        ports = (self.from_port, self.to_port)
        if self.protocol in ("tcp", "udp"):
            if min(ports) < 0:
                raise ValueError(f"{self.protocol} needs ports 0-65535, got {self.from_port}-{self.to_port}")
            if self.from_port > self.to_port:
                raise ValueError(f"port range {self.from_port}-{self.to_port} runs backwards")
        elif self.protocol == "all":
            if ports != (ANY, ANY):
                raise ValueError(f"all traffic has no ports, got {self.from_port}-{self.to_port}")
        elif max(ports) > ICMP_MAX:
            raise ValueError(f"ICMP type and code are 0-{ICMP_MAX}, got {self.from_port}:{self.to_port}")
        elif self.from_port == ANY and self.to_port != ANY:
            raise ValueError(f"ICMP code {self.to_port} needs a type")
        return self

    @classmethod
    def parse(cls, text: str) -> PortSpec:
        """One spec as written in SGMESH_PORTS; errors name the text."""
        match = PORT_SPEC.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a port spec ({PORT_SPEC_FORMS})")
        fields: dict[str, str | int]
        if match["protocol"]:
            from_port = int(match["from_port"])
            to_port = int(match["to_port"]) if match["to_port"] else from_port
            fields = {"protocol": match["protocol"], "from_port": from_port, "to_port": to_port}
        elif match["icmp"]:
            icmp_type = int(match["type"]) if match["type"] else ANY
            icmp_code = int(match["code"]) if match["code"] else ANY
            fields = {"protocol": match["icmp"], "from_port": icmp_type, "to_port": icmp_code}
        else:
            fields = {"protocol": "all"}
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            reason = error.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"{text.strip()!r} is not a valid port spec: {reason}") from None

    def __str__(self) -> str:
        if self.protocol == "all":
            return "all"
        if self.protocol in ("icmp", "icmpv6"):
            numbers = [str(number) for number in (self.from_port, self.to_port) if number != ANY]
            return ":".join([self.protocol, *numbers])
        ports = str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}"
        return f"{self.protocol}:{ports}"


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _port_specs(value: Any) -> Any:
    items = _comma_list(value)
    if isinstance(items, tuple):
        return tuple(PortSpec.parse(item) if isinstance(item, str) else item for item in items)
    return items


CommaList = BeforeValidator(_comma_list)
PortSpecs = Annotated[tuple[PortSpec, ...], BeforeValidator(_port_specs)]
# Where a validation error is: a field name, then item indexes or keys.
Location = tuple[int | str, ...]

ENVIRONMENT_NAMES: dict[str, str] = {
    "cluster": "SGMESH_CLUSTER",
    "region": "AWS_REGION",
    "table_name": "SGMESH_TABLE_NAME",
    "topic_arn": "SGMESH_TOPIC_ARN",
    "asg_names": "SGMESH_ASG_NAMES",
    "security_group_ids": "SGMESH_SECURITY_GROUP_IDS",
    "ports": "SGMESH_PORTS",
    "peer_topic_arns": "SGMESH_PEER_TOPIC_ARNS",
    "address": "SGMESH_ADDRESS",
    "rule_quota": "SGMESH_RULE_QUOTA",
    "event_retention_days": "SGMESH_EVENT_RETENTION_DAYS",
    "max_event_age_seconds": "SGMESH_MAX_EVENT_AGE_SECONDS",
    "target": "SGMESH_TARGET",
    "prefix_list_ids": "SGMESH_PREFIX_LIST_IDS",
    "observe": "SGMESH_OBSERVE",
    "admission_timeout_seconds": "SGMESH_ADMISSION_TIMEOUT_SECONDS",
    "admission_timeout_result": "SGMESH_ADMISSION_TIMEOUT_RESULT",
    "admission_queue_url": "SGMESH_ADMISSION_QUEUE_URL",
}
# SQS delays a message by at most 900 seconds (DelaySeconds, docs.aws.amazon.com/AWSSimpleQueueService/
# latest/APIReference/API_SendMessage.html): the admission timeout fires as one delayed message.
MAX_ADMISSION_TIMEOUT = 900
QueueUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+/[0-9]{12}/[A-Za-z0-9_-]{1,80}$")]


class ClusterSettings(BaseModel):
    """The settings every function of every region of a cluster shares: the deploy file's top-level keys."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    cluster: ClusterName
    ports: PortSpecs = ()
    address: AddressMode = Field(default=AddressMode.PUBLIC, strict=False)
    target: TargetMode = Field(default=TargetMode.SECURITY_GROUP, strict=False)
    rule_quota: int = Field(default=60, ge=1, le=1000, strict=False)
    event_retention_days: int = Field(default=30, ge=1, le=3650, strict=False)
    # Older snapshots are dropped, not applied: a captured message replayed later cannot act, and the
    # next true-up (every 15 minutes by default) supersedes anything that was merely delayed. At least
    # 30 minutes: every redelivery of a record (5 receives, 6 minutes apart) must still count as fresh.
    max_event_age_seconds: int = Field(default=21600, ge=1800, le=14 * 86400, strict=False)
    # Observe mode: the consumers plan and report (logs, drift metrics) but write to no group or list,
    # so a team can see what sgmesh would change on a running cluster before it lets it (docs/operations.md).
    observe: bool = Field(default=False, strict=False)
    # How long a launch waits for every peer region to acknowledge a version that admits it (0: not at
    # all, completed once published); then it is completed with `admission_timeout_result`.
    admission_timeout_seconds: int = Field(default=120, ge=0, le=MAX_ADMISSION_TIMEOUT, strict=False)
    admission_timeout_result: Literal["CONTINUE", "ABANDON"] = "CONTINUE"


class Settings(ClusterSettings):
    """Everything a handler needs to know about its deployment; built once per environment."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    region: RegionName
    table_name: TableName
    topic_arn: TopicArn | None = None
    asg_names: Annotated[tuple[GroupName, ...], CommaList] = ()
    security_group_ids: Annotated[tuple[SecurityGroupId, ...], CommaList] = ()
    peer_topic_arns: Annotated[tuple[TopicArn, ...], CommaList] = ()
    prefix_list_ids: Annotated[tuple[PrefixListId, ...], CommaList] = ()
    # This region's lifecycle buffer: where launches wait for the barrier, and its checks are sent.
    admission_queue_url: QueueUrl | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read the SGMESH_* variables (and AWS_REGION); errors name each variable and its value."""
        raw: dict[str, str] = {}
        for field, variable in ENVIRONMENT_NAMES.items():
            value = environ.get(variable)
            if variable == "AWS_REGION" and not value:
                value = environ.get("AWS_DEFAULT_REGION")
            if value is not None and value.strip():
                raw[field] = value.strip()
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise SettingsError("invalid sgmesh settings: " + "; ".join(describe_problems(error))) from None

    def require(self, *fields: str) -> Self:
        """Fail with the names of the variables one side of sgmesh needs and did not get."""
        missing = [ENVIRONMENT_NAMES[field] for field in fields if not getattr(self, field)]
        if missing:
            raise SettingsError(f"missing setting(s): {', '.join(missing)}")
        return self

    def own_topic_arn(self) -> str | None:
        """This region's topic: SGMESH_TOPIC_ARN, or else the one peer topic of this region (None when
        there is none, or several: accounts of a cross-account cluster in one region)."""
        if self.topic_arn:
            return self.topic_arn
        here = [arn for arn in self.peer_topic_arns if topic_region_and_account(arn)[0] == self.region]
        return here[0] if len(here) == 1 else None

    @property
    def holds_launches(self) -> bool:
        """Whether launches wait for the admission barrier: a timeout is set, and a queue to fire it."""
        return self.admission_timeout_seconds > 0 and self.admission_queue_url is not None

    def peer_regions(self) -> frozenset[str]:
        """`<account>/<region>` of every peer topic, this region's own included: the regions a launch
        waits for."""
        return frozenset(
            f"{account}/{region}" for region, account in map(topic_region_and_account, self.peer_topic_arns)
        )

    def to_env(self) -> dict[str, str]:
        """The variables `from_env` reads back into these settings (unset ones left out)."""
        environment = {}
        for field, variable in ENVIRONMENT_NAMES.items():
            text = _env_text(getattr(self, field))
            if text:
                environment[variable] = text
        return environment


def _env_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _environment_variable(location: Location) -> str:
    """How the environment spells the setting at a validation error's location."""
    field = str(location[0]) if location else ""
    return ENVIRONMENT_NAMES.get(field, field or "settings")


def describe_problems(
    error: ValidationError, name_of: Callable[[Location], str] = _environment_variable
) -> list[str]:
    """Each problem as `NAME='value': why`, NAME being how the input spells the setting at fault."""
    problems: list[str] = []
    for issue in error.errors(include_url=False):
        name = name_of(issue["loc"])
        if issue["type"] == "missing":
            problems.append(f"{name} is required but not set")
        else:
            problems.append(f"{name}={issue['input']!r}: {issue['msg']}")
    return problems


@lru_cache(maxsize=8)
def _settings_for(environment: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_env(dict(environment))


def current_settings(environ: Mapping[str, str]) -> Settings:
    """Settings for this environment, parsed once per distinct set of values (not at import time)."""
    relevant = (*ENVIRONMENT_NAMES.values(), "AWS_DEFAULT_REGION")
    return _settings_for(tuple((name, environ[name]) for name in relevant if name in environ))
