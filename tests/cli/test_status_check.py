"""`sgmesh status --check`: exit 0 on a healthy mesh, 1 when a region drifts (for cron and CI)."""

from __future__ import annotations

from pathlib import Path

import boto3

from sgmesh.local.mesh import LocalMesh
from tests.cli.conftest import Run

WEST = "eu-west-1"


def test_check_passes_on_a_converged_mesh_and_fails_naming_the_region_that_drifts(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    # GIVEN a converged mesh, WHEN the check runs, THEN it passes, with the verdict and each source's age
    code, output = sgmesh("status", "--check", "--mesh", str(mesh_file))
    assert code == 0
    assert "healthy: every region in sync" in output
    (west,) = sgmesh.json("status", "--mesh", str(mesh_file), "--region", WEST)
    assert all(0 <= s["lag_seconds"] <= s["age_seconds"] < 60 and not s["silent"] for s in west["sources"])
    # WHEN a managed rule of eu-west-1 is removed by hand
    rule = next(r for r in local_mesh.ingress(WEST) if r.get("Description", "").startswith("sgmesh:demo "))
    boto3.client("ec2", region_name=WEST).revoke_security_group_ingress(
        GroupId=local_mesh.stacks[WEST].security_group_id, SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]]
    )
    # THEN the check fails and names it; without --check, status still exits 0
    code, output = sgmesh("status", "--check", "--mesh", str(mesh_file))
    assert code == 1
    assert f"unhealthy: drifting: {WEST}" in output
    assert sgmesh("status", "--mesh", str(mesh_file))[0] == 0
