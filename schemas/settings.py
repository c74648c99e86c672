"""The deployment's settings: SGMESH_* environment variables read once into one frozen model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import SettingsError
from schemas.names import (
    ClusterName,
    GroupName,
    PrefixListId,
    RegionName,
    SecurityGroupId,
    TableName,
    TopicArn,
)

PORT_SPEC = re.compile(r"^(?P<protocol>tcp|udp):(?P<from_port>[0-9]{1,5})(-(?P<to_port>[0-9]{1,5}))?$")


class AddressMode(StrEnum):
    """Which of a member's addresses the rules admit."""

    PUBLIC = "public"
    PRIVATE = "private"


class TargetMode(StrEnum):
    """Where the member addresses go: rules in the groups, spread over shard groups, or a prefix list."""

    SECURITY_GROUP = "security-group"
    SHARDED = "sharded"
    PREFIX_LIST = "prefix-list"


class PortSpec(BaseModel):
    """One protocol and port range every member may reach, e.g. `tcp:7000-7001`."""

    model_config = ConfigDict(strict=True, frozen=True)

    protocol: Literal["tcp", "udp"]
    from_port: int = Field(ge=0, le=65535)
    to_port: int = Field(ge=0, le=65535)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.from_port > self.to_port:
            raise ValueError(f"port range {self.from_port}-{self.to_port} runs backwards")
        return self

    @classmethod
    def parse(cls, text: str) -> PortSpec:
        match = PORT_SPEC.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a port spec (protocol:port or protocol:from-to, tcp or udp)")
        from_port = int(match["from_port"])
        to_port = int(match["to_port"]) if match["to_port"] else from_port
        try:
            return cls(protocol=match["protocol"], from_port=from_port, to_port=to_port)  # type: ignore[arg-type]
        except ValidationError as error:
            reason = error.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"{text.strip()!r} is not a valid port spec: {reason}") from None

    def __str__(self) -> str:
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
}


class Settings(BaseModel):
    """Everything a handler needs to know about its deployment; built once per environment."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    cluster: ClusterName
    region: RegionName
    table_name: TableName
    topic_arn: TopicArn | None = None
    asg_names: Annotated[tuple[GroupName, ...], CommaList] = ()
    security_group_ids: Annotated[tuple[SecurityGroupId, ...], CommaList] = ()
    ports: Annotated[tuple[PortSpec, ...], BeforeValidator(_port_specs)] = ()
    peer_topic_arns: Annotated[tuple[TopicArn, ...], CommaList] = ()
    address: AddressMode = Field(default=AddressMode.PUBLIC, strict=False)
    target: TargetMode = Field(default=TargetMode.SECURITY_GROUP, strict=False)
    prefix_list_ids: Annotated[tuple[PrefixListId, ...], CommaList] = ()
    rule_quota: int = Field(default=60, ge=1, le=1000, strict=False)
    event_retention_days: int = Field(default=30, ge=1, le=3650, strict=False)
    # Older snapshots are dropped, not applied: a captured message replayed later cannot act, and the
    # next true-up (every 15 minutes by default) supersedes anything that was merely delayed.
    max_event_age_seconds: int = Field(default=21600, ge=60, le=14 * 86400, strict=False)

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
            raise SettingsError(_describe(error)) from None

    def require(self, *fields: str) -> Self:
        """Fail with the names of the variables one side of sgmesh needs and did not get."""
        missing = [ENVIRONMENT_NAMES[field] for field in fields if not getattr(self, field)]
        if missing:
            raise SettingsError(f"missing setting(s): {', '.join(missing)}")
        return self


def _describe(error: ValidationError) -> str:
    problems: list[str] = []
    for issue in error.errors(include_url=False):
        field = str(issue["loc"][0]) if issue["loc"] else ""
        variable = ENVIRONMENT_NAMES.get(field, field or "settings")
        if issue["type"] == "missing":
            problems.append(f"{variable} is required but not set")
        else:
            problems.append(f"{variable}={issue['input']!r}: {issue['msg']}")
    return "invalid sgmesh settings: " + "; ".join(problems)


@lru_cache(maxsize=8)
def _settings_for(environment: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_env(dict(environment))


def current_settings(environ: Mapping[str, str]) -> Settings:
    """Settings for this environment, parsed once per distinct set of values (not at import time)."""
    relevant = (*ENVIRONMENT_NAMES.values(), "AWS_DEFAULT_REGION")
    return _settings_for(tuple((name, environ[name]) for name in relevant if name in environ))
