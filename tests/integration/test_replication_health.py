"""Replication health on the three-region mesh: a region whose producer fell silent shows up in every
consumer's OldestSourceAgeSeconds and in `sgmesh status --check`; once it speaks again, both clear."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.clients import ClientFactory
from cloud.sns import Topic
from consumers.metrics import NAMESPACE, Outcome
from schemas.events import parse_snapshot
from sgmesh import cli
from sgmesh.meshfile import render
from tests.support.mesh import Mesh

EAST, WEST = "us-east-1", "us-west-2"
SILENT_FOR = timedelta(minutes=50)  # past three 15-minute true-up periods


def oldest_source_ages(stdout: str) -> list[float]:
    """The OldestSourceAgeSeconds values the consumers emitted (their EMF lines), in order."""
    ages: list[float] = []
    for line in stdout.splitlines():
        if not (line.startswith("{") and '"_aws"' in line):
            continue
        document = json.loads(line)
        names = {
            metric["Name"]
            for directive in document["_aws"]["CloudWatchMetrics"]
            if directive["Namespace"] == NAMESPACE
            for metric in directive["Metrics"]
        }
        if Outcome.OLDEST_SOURCE_AGE.value in names:
            value = document[Outcome.OLDEST_SOURCE_AGE.value]
            ages += value if isinstance(value, list) else [value]
    return ages


def last_heard_long_ago(mesh: Mesh) -> None:
    """us-west-2's producer broke 50 minutes ago: the last snapshot it published is that old (the
    harness publishes it on the region's topic, as the producer did then)."""
    (message,) = [
        call.params["Message"]
        for invocation in mesh.handled(WEST, "trueup")
        for call in invocation.calls
        if call.operation == "Publish"
    ]
    last = parse_snapshot(message)
    old = last.model_copy(update={"version": last.version + 1, "produced_at": datetime.now(UTC) - SILENT_FOR})
    Topic(mesh.sns(WEST), mesh.stacks[WEST].topic_arn).publish(old)


def check(mesh: Mesh, path: Path) -> int:
    """`sgmesh status --check` against the mesh, as cron would run it."""
    path.write_text(render(mesh.mesh_file(None)))
    return cli.main(["status", "--check", "--mesh", str(path)], ClientFactory(mesh.session))


def test_a_silent_region_shows_in_the_source_age_metric_and_fails_status_check(
    mesh: Mesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a converged mesh whose us-west-2 producer last published 50 minutes ago
    mesh.trueup(WEST)
    mesh.settle()
    last_heard_long_ago(mesh)
    mesh.settle()
    # WHEN the other regions' true-ups keep running, every consumer reporting what it heard
    mesh.metrics = io.StringIO()
    mesh.trueup(EAST)
    mesh.trueup("eu-west-1")
    mesh.settle()
    # THEN every consumer reconciled and reported us-west-2's age, past the alarm's threshold
    # (three true-up periods)
    ages = oldest_source_ages(mesh.metrics.getvalue())
    assert len(ages) >= len(mesh.regions)
    assert min(ages) > mesh.mesh_file(None).source_silence_seconds
    # ... and `sgmesh status --check` fails, naming the silent source in every region
    capsys.readouterr()
    code = check(mesh, tmp_path / "mesh.toml")
    output = capsys.readouterr().out
    assert code == 1
    assert "silent sources" in output
    assert output.count(f"/{WEST}/") >= len(mesh.regions)

    # WHEN us-west-2's producer speaks again
    mesh.metrics = io.StringIO()
    mesh.trueup(WEST)
    mesh.settle()
    # THEN the ages are back to seconds, and the check passes
    assert oldest_source_ages(mesh.metrics.getvalue())[-1] < 60
    assert check(mesh, tmp_path / "mesh.toml") == 0
    assert "healthy" in capsys.readouterr().out
