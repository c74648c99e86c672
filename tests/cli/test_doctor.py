"""`sgmesh doctor` from the command line: a verdict people read, JSON scripts read, and an exit code."""

from __future__ import annotations

import json
from pathlib import Path

import boto3

from sgmesh.local.mesh import LocalMesh
from tests.cli.conftest import Run

EAST, WEST = "us-east-1", "eu-west-1"


def test_a_healthy_mesh_exits_0(sgmesh: Run, mesh_file: Path) -> None:
    code, out = sgmesh("doctor", "--mesh", str(mesh_file))

    assert code == 0
    assert f"wiring healthy in {EAST}, {WEST}" in out
    assert sgmesh.json("doctor", "--mesh", str(mesh_file)) == {
        "healthy": True,
        "regions": [EAST, WEST],
        "findings": [],
        "repaired": [],
    }


def test_a_lost_subscription_exits_1_until_repaired(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    # GIVEN eu-west-1's queue no longer subscribed to us-east-1's topic
    sns = boto3.client("sns", region_name=EAST)
    topic = local_mesh.stacks[EAST].topic_arn
    (lost,) = [
        subscription
        for subscription in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        if subscription["Endpoint"] == local_mesh.stacks[WEST].queue_arn
    ]
    sns.unsubscribe(SubscriptionArn=lost["SubscriptionArn"])

    code, out = sgmesh("doctor", "--mesh", str(mesh_file))
    assert code == 1
    assert "wiring broken: 1 problem(s)" in out
    code, out = sgmesh("doctor", "--mesh", str(mesh_file), "--json")
    assert code == 1
    (finding,) = json.loads(out)["findings"]
    assert finding == {
        "region": WEST,
        "part": "subscription",
        "subject": topic,
        "problem": "missing: this region receives nothing from the topic",
        "fix": "make deploy or sgmesh doctor --repair re-creates it",
        "repairable": True,
    }
    code, out = sgmesh("doctor", "--mesh", str(mesh_file), "--region", WEST, "--repair")
    assert code == 0
    assert "repaired" in out
    assert f"wiring healthy in {WEST}; 1 subscription(s) repaired" in out
    assert sgmesh("doctor", "--mesh", str(mesh_file))[0] == 0
