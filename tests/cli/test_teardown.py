"""`sgmesh teardown` from the command line: on a real account's mesh it prints its plan and does
nothing until the operator names the cluster."""

from __future__ import annotations

from pathlib import Path

from sgmesh.local.mesh import LocalMesh
from sgmesh.meshfile import render
from tests.cli.conftest import Run

WEST = "eu-west-1"


def test_a_real_accounts_region_is_not_torn_down_without_the_clusters_name(
    sgmesh: Run, local_mesh: LocalMesh, tmp_path: Path
) -> None:
    # GIVEN the mesh file of an account (no local endpoint)
    path = tmp_path / "account.toml"
    path.write_text(render(local_mesh.mesh_file(None)))
    rules = {region: local_mesh.managed_permissions(region) for region in local_mesh.regions}

    for confirm in ((), ("--confirm", "another-cluster")):
        code, out = sgmesh("teardown", "--mesh", str(path), "--region", WEST, *confirm)

        # THEN it says what it would do, step by step, and refuses
        assert code == 2
        assert f"sgmesh teardown of {WEST} (demo) will:" in out
        assert f"3. publish the retirement of {local_mesh.stacks[WEST].group_name}" in out
        assert "nothing done: confirm the teardown by naming the cluster: --confirm demo" in out
    # ... and nothing changed anywhere
    assert {region: local_mesh.managed_permissions(region) for region in local_mesh.regions} == rules


def test_a_region_not_in_the_mesh_file_is_a_usage_error(sgmesh: Run, mesh_file: Path) -> None:
    code, out = sgmesh("teardown", "--mesh", str(mesh_file), "--region", "ap-south-1")

    assert code == 2
    assert "region 'ap-south-1' is not in the mesh file" in out
