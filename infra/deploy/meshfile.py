"""The operator's mesh file, written from the stacks' outputs after a deploy, never over an edited one."""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import boto3

from infra.deploy.cloudformation import stack_outputs, stack_status
from infra.deploy.config import ClusterConfig
from infra.deploy.errors import DeployError
from schemas.names import stack_name
from sgmesh.meshfile import MeshFile, RegionEntry, render

HEADER = "# Written by `make deploy` from the stacks' outputs; sha256 of the rest: "


def mesh_of(config: ClusterConfig, regions: Sequence[str], session: boto3.session.Session) -> MeshFile:
    """The mesh file of these regions' stacks (those that exist): what `make deploy` writes for the
    operator, and what `sgmesh doctor` and `make destroy` read when they run from the deploy file."""
    outputs = {}
    for region in regions:
        cfn = session.client("cloudformation", region_name=region)
        if stack_status(cfn, stack_name(config.cluster)) is not None:
            outputs[region] = stack_outputs(cfn, stack_name(config.cluster))
    return mesh_from_outputs(config, outputs)


def mesh_from_outputs(config: ClusterConfig, outputs: Mapping[str, Mapping[str, str]]) -> MeshFile:
    """The mesh file for these regions' stack outputs (region -> output key -> value). A stack of an
    older release lacks some outputs: what the deploy file says stands in for them."""
    silences = {
        int(values["SourceSilenceAlarmSeconds"])
        for values in outputs.values()
        if "SourceSilenceAlarmSeconds" in values
    }
    try:
        regions = {region: _entry(config, region, values) for region, values in outputs.items()}
    except KeyError as error:
        raise DeployError(
            f"the stacks' outputs cannot make a mesh file (no {error}): deploy every region again"
        ) from None
    return MeshFile(
        cluster=config.cluster,
        ports=config.ports,
        address=config.address,
        target=config.target,
        rule_quota=config.rule_quota,
        # Regions deployed with different schedules: a source is silent past the longest threshold.
        source_silence_seconds=max(silences, default=config.silence_alarm_seconds()),
        regions=regions,
        peer_topic_arns=config.peer_topic_arns,
        peer_accounts=config.peer_accounts,
    )


def _entry(config: ClusterConfig, region: str, values: Mapping[str, str]) -> RegionEntry:
    return RegionEntry(
        table=values["TableName"],
        topic_arn=values["TopicArn"],
        asg_names=_listed(values.get("AutoScalingGroupNames", "")) or config.groups(region),
        security_group_ids=_listed(values.get("SecurityGroupIds", ""))
        or config.regions[region].security_groups,
        prefix_list_ids=_listed(values.get("PrefixListIds", "")),
        observe=values.get("Observe") == "true",
        queue_url=values.get("QueueUrl"),
        delivery_dead_letter_queue_url=values.get("DeliveryDeadLetterQueueUrl"),
        lifecycle_buffer_url=values.get("LifecycleBufferUrl"),
    )


def _listed(text: str) -> tuple[str, ...]:
    return tuple(item for item in text.split(",") if item)


@dataclass(frozen=True)
class Written:
    """What happened to the mesh file: `written` where the deployment's mesh now is, and, when the
    operator's own file was kept, the diff from it to the deployment's."""

    path: Path
    written: Path | None
    diff: Path | None = None

    def report(self) -> str:
        if self.written is None:
            return f"mesh file {self.path}: unchanged"
        if self.diff is None:
            return f"mesh file {self.path}: written (sgmesh status --mesh {self.path})"
        return (
            f"mesh file {self.path} was edited by hand and is kept; the deployment's is {self.written}, "
            f"the difference in {self.diff}"
        )


def write_mesh_file(path: Path, mesh: MeshFile) -> Written:
    """Write the mesh when the file is absent or is one this wrote and nobody edited since (its header's
    digest still matches); when the operator edited it, write beside it (`.new`) with a `.diff`."""
    body = render(mesh)
    text = f"{HEADER}{_digest(body)}\n{body}"
    if not path.exists():
        path.write_text(text)
        return Written(path, path)
    current = path.read_text()
    if current == text:
        return Written(path, None)
    if _unedited(current):
        path.write_text(text)
        return Written(path, path)
    beside, diff = path.with_name(path.name + ".new"), path.with_name(path.name + ".diff")
    beside.write_text(text)
    diff.write_text(
        "".join(
            difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True), str(path), str(beside)
            )
        )
    )
    return Written(path, beside, diff)


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _unedited(text: str) -> bool:
    first, _newline, body = text.partition("\n")
    return first.startswith(HEADER) and first.removeprefix(HEADER) == _digest(body)
