"""The deploy's view of a cluster as a mesh file: the deploy file's settings and each stack's outputs."""

from __future__ import annotations

from collections.abc import Sequence

import boto3

from infra.deploy.cloudformation import stack_outputs, stack_status
from infra.deploy.config import ClusterConfig
from schemas.names import stack_name
from sgmesh.meshfile import MeshFile, RegionEntry


def mesh_of(config: ClusterConfig, regions: Sequence[str], session: boto3.session.Session) -> MeshFile:
    """The mesh file of these regions' stacks (those that exist), which `sgmesh doctor` and `sgmesh
    teardown` read as they read the operator's."""
    entries = {}
    for region in regions:
        cfn = session.client("cloudformation", region_name=region)
        if stack_status(cfn, stack_name(config.cluster)) is None:
            continue
        outputs = stack_outputs(cfn, stack_name(config.cluster))
        entries[region] = RegionEntry.model_validate(
            {
                "table": outputs["TableName"],
                "topic_arn": outputs["TopicArn"],
                "asg_names": config.groups(region),
                "security_group_ids": config.regions[region].security_groups,
                "prefix_list_ids": [pl for pl in outputs.get("PrefixListIds", "").split(",") if pl],
                "queue_url": outputs.get("QueueUrl"),
                "delivery_dead_letter_queue_url": outputs.get("DeliveryDeadLetterQueueUrl"),
                "lifecycle_buffer_url": outputs.get("LifecycleBufferUrl"),
            }
        )
    return MeshFile.model_validate(
        {
            "cluster": config.cluster,
            "ports": config.ports,
            "address": config.address,
            "target": config.target,
            "rule_quota": config.rule_quota,
            "regions": entries,
            "peer_topic_arns": config.peer_topic_arns,
            "peer_accounts": config.peer_accounts,
        }
    )
