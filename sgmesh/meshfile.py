"""The operator's mesh file (TOML): the cluster, its regions and each region's stack outputs.

cluster = "demo"
ports = "tcp:7000-7001,tcp:9042"        # default for every region
# endpoint_url = "http://127.0.0.1:5000"  # only for a local mesh (sgmesh local writes this)

[regions.us-east-1]
table = "sgmesh-demo"
topic_arn = "arn:aws:sns:us-east-1:123456789012:sgmesh-demo"
asg_names = ["cassandra-us-east-1"]
security_group_ids = ["sg-0123456789abcdef0"]
# observe = true                          # the region's consumer only plans (SGMESH_OBSERVE)
# The stack's outputs QueueUrl, DeliveryDeadLetterQueueUrl and LifecycleBufferUrl, which `sgmesh doctor`
# and `sgmesh teardown` read from the region's stack when these are left out:
# queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/sgmesh-demo-Queue-..."
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from schemas.errors import SettingsError
from schemas.names import (
    AccountId,
    ClusterName,
    GroupName,
    PrefixListId,
    QueueUrl,
    RegionName,
    SecurityGroupId,
    TableName,
    TopicArn,
)
from schemas.settings import AddressMode, PortSpec, Settings, TargetMode

# Not sgmesh.toml: that name is the deploy file `make deploy` reads (docs/deploying.md).
DEFAULT_MESH_FILE = "sgmesh.mesh.toml"


def _port_specs(value: object) -> object:
    if isinstance(value, str):
        return tuple(PortSpec.parse(item) for item in value.split(",") if item.strip())
    return value


PortList = Annotated[tuple[PortSpec, ...], BeforeValidator(_port_specs)]


class RegionEntry(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    table: TableName
    topic_arn: TopicArn
    # TOML arrays arrive as lists: the only coercion allowed on an otherwise strict file.
    asg_names: tuple[GroupName, ...] = Field(min_length=1, strict=False)
    security_group_ids: tuple[SecurityGroupId, ...] = Field(min_length=1, strict=False)
    ports: PortList | None = None
    prefix_list_ids: tuple[PrefixListId, ...] = Field(default=(), strict=False)
    # Where the stack put its queues: when left out, read from the stack's outputs.
    queue_url: QueueUrl | None = None
    delivery_dead_letter_queue_url: QueueUrl | None = None
    lifecycle_buffer_url: QueueUrl | None = None
    # The region's consumer runs in observe mode (SGMESH_OBSERVE): it plans and reports, writes nothing.
    observe: bool = False


class MeshFile(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    cluster: ClusterName
    ports: PortList
    address: AddressMode = Field(default=AddressMode.PUBLIC, strict=False)
    target: TargetMode = Field(default=TargetMode.SECURITY_GROUP, strict=False)
    rule_quota: int = Field(default=60, ge=1, le=1000)
    # A source heard from longer ago is silent (`sgmesh status --check` fails): the template's
    # SourceSilenceAlarm threshold, three true-up periods (`make deploy` writes it).
    source_silence_seconds: int = Field(default=3 * 15 * 60, ge=60)
    endpoint_url: str | None = Field(default=None, pattern=r"^http://(127\.0\.0\.1|localhost):[0-9]+$")
    regions: dict[RegionName, RegionEntry] = Field(min_length=1)
    # A cross-account cluster: the other accounts' topics the queues subscribe to, and the accounts
    # whose queues subscribe to these regions' topics (the deploy file's keys of the same names).
    peer_topic_arns: tuple[TopicArn, ...] = Field(default=(), strict=False)
    peer_accounts: tuple[AccountId, ...] = Field(default=(), strict=False)

    @property
    def topic_arns(self) -> tuple[str, ...]:
        """Every topic of the cluster: each region's, then the peer accounts'."""
        return (*(entry.topic_arn for entry in self.regions.values()), *self.peer_topic_arns)

    def settings(self, region: str) -> Settings:
        """The settings region's functions run with, as the mesh file describes them."""
        entry = self.region(region)
        return Settings(
            cluster=self.cluster,
            region=region,
            table_name=entry.table,
            topic_arn=entry.topic_arn,
            asg_names=entry.asg_names,
            security_group_ids=entry.security_group_ids,
            ports=entry.ports or self.ports,
            peer_topic_arns=self.topic_arns,
            address=self.address,
            target=self.target,
            prefix_list_ids=entry.prefix_list_ids,
            rule_quota=self.rule_quota,
            observe=entry.observe,
        )

    def region(self, region: str) -> RegionEntry:
        if region not in self.regions:
            known = ", ".join(sorted(self.regions))
            raise SettingsError(f"region {region!r} is not in the mesh file (it has: {known})")
        return self.regions[region]

    def table_of(self, region: str) -> str | None:
        entry = self.regions.get(region)
        return entry.table if entry else None


def load(path: Path) -> MeshFile:
    """Read and validate a mesh file; errors name the file, the key and the value."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsError(
            f"mesh file {str(path)!r} not found (pass --mesh PATH or set SGMESH_MESH_FILE)"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"mesh file {str(path)!r} is not valid TOML: {error}") from None
    try:
        return MeshFile.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}"
            + ("" if issue["type"] == "missing" else f"={issue['input']!r}")
            + f": {issue['msg']}"
            for issue in error.errors(include_url=False)
        )
        raise SettingsError(f"mesh file {str(path)!r}: {problems}") from None


def render(mesh: MeshFile) -> str:
    """The mesh file's TOML text (what `sgmesh local` writes for the local mesh)."""
    lines = [f'cluster = "{mesh.cluster}"', f'ports = "{",".join(str(port) for port in mesh.ports)}"']
    lines += [f'address = "{mesh.address.value}"', f'target = "{mesh.target.value}"']
    lines.append(f"rule_quota = {mesh.rule_quota}")
    lines.append(f"source_silence_seconds = {mesh.source_silence_seconds}")
    if mesh.endpoint_url:
        lines.append(f'endpoint_url = "{mesh.endpoint_url}"')
    for key in ("peer_topic_arns", "peer_accounts"):
        if getattr(mesh, key):
            lines.append(f"{key} = " + _toml_list(getattr(mesh, key)))
    for name, entry in mesh.regions.items():
        lines += [
            "",
            f"[regions.{name}]",
            f'table = "{entry.table}"',
            f'topic_arn = "{entry.topic_arn}"',
            f"asg_names = {_toml_list(entry.asg_names)}",
            f"security_group_ids = {_toml_list(entry.security_group_ids)}",
        ]
        if entry.prefix_list_ids:
            lines.append("prefix_list_ids = " + _toml_list(entry.prefix_list_ids))
        for key in ("queue_url", "delivery_dead_letter_queue_url", "lifecycle_buffer_url"):
            if getattr(entry, key):
                lines.append(f'{key} = "{getattr(entry, key)}"')
        if entry.observe:
            lines.append("observe = true")
    return "\n".join(lines) + "\n"


def _toml_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"
