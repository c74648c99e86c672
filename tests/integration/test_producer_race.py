"""Two producers racing in one region: the committed version order follows the describe order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cloud.autoscaling import AutoScaling
from cloud.dynamodb import Table
from cloud.ec2 import Ec2
from cloud.sns import Topic
from producers.bootstrap import build, logger
from producers.metrics import EmfOutcomes
from producers.service import SnapshotService
from schemas.inventory import GroupInstance
from schemas.lifecycle import TrueupRequest
from schemas.settings import Settings
from tests.support.mesh import Mesh


class InterleavingGroups:
    """Wraps the real Auto Scaling adapter: right after the first describe returns, runs `meanwhile`."""

    def __init__(self, real: AutoScaling, meanwhile: Any) -> None:
        self.real = real
        self.meanwhile = meanwhile
        self.views: list[int] = []

    def group_instances(self, names: Sequence[str]) -> dict[str, tuple[GroupInstance, ...]]:
        view = self.real.group_instances(names)
        self.views.append(sum(len(instances) for instances in view.values()))
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        return view


def test_the_older_describe_never_gets_the_higher_version(mesh: Mesh) -> None:
    region = "us-east-1"
    group = mesh.stacks[region].group_name
    settings = Settings.from_env(mesh.stacks[region].environment)
    factory = mesh.factory

    def scale_out_and_let_producer_b_publish() -> None:
        mesh.autoscaling(region).set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=3)
        build(settings, factory).trueup(TrueupRequest())

    # GIVEN producer A whose describe (2 members) is overtaken by producer B's (3 members)
    autoscaling = AutoScaling(factory.autoscaling(region))
    interleaving = InterleavingGroups(autoscaling, scale_out_and_let_producer_b_publish)
    producer_a = SnapshotService(
        settings=settings,
        groups=interleaving,
        addresses=Ec2(factory.ec2(region)),
        ledger=Table(factory.dynamodb(region), settings.table_name),
        topic=Topic(factory.sns(region), settings.topic_arn or ""),
        hooks=autoscaling,
        outcomes=EmfOutcomes(settings.cluster),
        logger=logger,
    )

    # WHEN A finishes
    published = producer_a.trueup(TrueupRequest())

    # THEN A lost its first claim, described again, and published the newer view above B's version
    assert interleaving.views == [2, 3]
    snapshots = sorted(
        (json.loads(json.loads(m["Body"])["Message"]) for m in mesh.drain(region)), key=lambda s: s["version"]
    )
    assert [len(s["members"]) for s in snapshots] == [3, 3]
    assert [item.version for item in published] == [snapshots[1]["version"]]
    assert snapshots[0]["version"] < snapshots[1]["version"]
