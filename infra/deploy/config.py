"""The deploy file (TOML): the cluster's settings, typed as the functions type them, and each region's."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra.deploy.errors import DeployError
from schemas.names import AccountId, GroupName, SecurityGroupId, TopicArn
from schemas.settings import ClusterSettings, Location, PortSpecs, Settings, describe_problems

# CloudFormation names the table; any valid name stands in for it until the stack exists.
TABLE_STAND_IN = "sgmesh-table"


class RegionConfig(BaseModel):
    """A [regions.<name>] section: what differs in one region."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    security_groups: tuple[SecurityGroupId, ...] = Field(min_length=1)
    auto_scaling_groups: tuple[GroupName, ...] | None = None
    alarm_topic_arn: str = ""


class ClusterConfig(ClusterSettings):
    """The deploy file: the settings every region's functions share (the same keys, types and checks
    as the functions' own settings), the stack's own options, and per-region ones under [regions]."""

    # A TOML array is a list; the functions' settings are strict, the file need not be.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    # Every consumer needs ports; the functions default to none because the producers read none.
    ports: PortSpecs = Field(min_length=1)
    auto_scaling_groups: tuple[GroupName, ...] = ()
    prefix_list_max_entries: int = 20
    lifecycle_heartbeat_timeout: int = 600
    lifecycle_default_result: str = "CONTINUE"
    trueup_schedule: str = "rate(15 minutes)"
    log_retention_days: int = 365
    peer_accounts: tuple[AccountId, ...] = ()
    peer_topic_arns: tuple[TopicArn, ...] = ()
    regions: dict[str, RegionConfig]

    @classmethod
    def load(cls, path: Path) -> ClusterConfig:
        """The file's values, or every problem in it, each naming its key and value."""
        try:
            return cls.model_validate(tomllib.loads(path.read_text()))
        except FileNotFoundError:
            raise DeployError(f"{path}: no such deploy file (start from infra/sgmesh.example.toml)") from None
        except tomllib.TOMLDecodeError as error:
            raise DeployError(f"{path}: {error}") from None
        except ValidationError as error:
            problems = describe_problems(error, _key)
            raise DeployError(f"{path} has problems:\n  " + "\n  ".join(problems)) from None

    def groups(self, region: str) -> tuple[str, ...]:
        return self.regions[region].auto_scaling_groups or self.auto_scaling_groups

    def settings(self, region: str, topic_arns: Sequence[str]) -> Settings:
        """The settings the region's functions will read, validated as they validate them; the first
        topic is the region's own."""
        shared = {field: getattr(self, field) for field in ClusterSettings.model_fields}
        try:
            return Settings.model_validate(
                {
                    **shared,
                    "region": region,
                    "table_name": TABLE_STAND_IN,
                    "topic_arn": topic_arns[0],
                    "asg_names": self.groups(region),
                    "security_group_ids": self.regions[region].security_groups,
                    "peer_topic_arns": tuple(topic_arns),
                }
            )
        except ValidationError as error:
            problems = "; ".join(describe_problems(error))
            raise DeployError(f"the functions would refuse their settings: {problems}") from None

    def stack_options(self, region: str) -> dict[str, str]:
        """The stack's parameters that are no function's setting (the template's names)."""
        return {
            "PeerAccountIds": ",".join(self.peer_accounts),
            "PrefixListMaxEntries": str(self.prefix_list_max_entries),
            "LifecycleHeartbeatTimeout": str(self.lifecycle_heartbeat_timeout),
            "LifecycleDefaultResult": self.lifecycle_default_result,
            "TrueupSchedule": self.trueup_schedule,
            "AlarmTopicArn": self.regions[region].alarm_topic_arn,
            "LogRetentionInDays": str(self.log_retention_days),
        }


def _key(location: Location) -> str:
    """A key as the deploy file spells it: `target`, `regions.us-east-1.security_groups[0]`."""
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key.removeprefix(".") or "the deploy file"
