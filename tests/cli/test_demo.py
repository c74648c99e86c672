"""The demo story converges at every step, and `sgmesh demo` / `sgmesh local` work end to end."""

from __future__ import annotations

import json
from pathlib import Path

from sgmesh.demo import story
from sgmesh.local.mesh import LocalMesh
from sgmesh.meshfile import load
from tests.cli.conftest import Run


def test_every_step_of_the_story_converges_and_the_cut_off_region_catches_up(local_mesh: LocalMesh) -> None:
    cut = local_mesh.regions[-1]
    for step in story(local_mesh)[1:]:  # the fixture already ran the first true-up
        step.act()
        outcome = local_mesh.run_until_converged()
        assert outcome.converged, step.title
        if local_mesh.mappings[cut].paused:
            # its deliveries really stopped: it still holds the membership from before the cut
            assert local_mesh.managed_permissions(cut) != local_mesh.expected_permissions()
    assert not local_mesh.mappings[cut].paused
    assert local_mesh.managed_permissions(cut) == local_mesh.expected_permissions()
    assert local_mesh.hooks.pending == {}
    assert local_mesh.bus.failed == []
    # The hand-kept rules were adopted, so they went with their member: none is left anywhere.
    assert not any(
        "kept by hand" in rule.get("Description", "")
        for region in local_mesh.regions
        for rule in local_mesh.ingress(region)
    )


def test_demo_command_prints_a_converged_verdict_and_exits_zero(aws: str, sgmesh: Run) -> None:
    code, out = sgmesh("demo", "--json", "--regions", "us-east-1,eu-west-1")

    verdict = json.loads(out)
    assert code == 0
    assert verdict["converged"] is True
    assert [step["converged"] for step in verdict["steps"]] == [True] * 8
    assert verdict["api_calls"] == sum(verdict["api_calls_by_operation"].values()) > 0
    hand_termination = verdict["steps"][3]
    assert hand_termination["simulated_seconds"] >= 250, "only the scheduled true-up can catch it"
    # the launches wait in Pending:Wait until every region acknowledged them; with eu-west-1 cut off,
    # they are completed at the admission timeout, and the story says so
    scale_out, cut_off = verdict["steps"][1], verdict["steps"][4]
    assert "CONTINUE once every region acknowledged" in scale_out["launches"]
    assert "CONTINUE at the admission timeout (120 s)" in cut_off["launches"]
    assert "eu-west-1 did not acknowledge" in cut_off["launches"]
    assert cut_off["simulated_seconds"] >= 120


def test_demo_needs_two_regions(sgmesh: Run) -> None:
    code, out = sgmesh("demo", "--regions", "us-east-1")

    assert code == 2
    assert "at least two regions" in out


def test_local_writes_a_mesh_file_for_the_operator_cli(aws: str, sgmesh: Run, tmp_path: Path) -> None:
    path = tmp_path / "local.toml"

    code, out = sgmesh(
        "local", "--for", "0", "--json", "--regions", "us-east-1,eu-west-1", "--write-mesh", str(path)
    )

    started = json.loads(out)
    assert code == 0
    assert started["converged"] is True
    mesh = load(path)
    assert mesh.endpoint_url == started["endpoint"]
    assert sorted(mesh.regions) == ["eu-west-1", "us-east-1"]
