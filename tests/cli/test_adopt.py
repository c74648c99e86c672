"""`sgmesh adopt`: a dry run by default that shows what it would take over; `--apply` takes it over."""

from __future__ import annotations

from pathlib import Path

import boto3

from sgmesh.local.mesh import LocalMesh
from tests.cli.conftest import Run

EAST = "us-east-1"


def test_adopt_is_a_dry_run_until_apply_and_then_finds_nothing_left(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    # GIVEN a converged mesh where an operator replaced one managed rule by the same rule, unmarked
    ec2 = boto3.client("ec2", region_name=EAST)
    group_id = local_mesh.stacks[EAST].security_group_id
    rule = next(r for r in local_mesh.ingress(EAST) if r.get("Description", "").startswith("sgmesh:demo "))
    ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]])
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": rule["FromPort"],
                "ToPort": rule["ToPort"],
                "IpRanges": [{"CidrIp": rule["CidrIpv4"], "Description": "kept by hand"}],
            }
        ],
    )
    # WHEN the operator runs adopt without --apply
    code, table = sgmesh("adopt", "--mesh", str(mesh_file), "--region", EAST)
    # THEN it shows the rule and says it is a dry run
    assert code == 0
    assert "dry run" in table
    assert "kept by hand" in table
    # WHEN the operator applies it
    (group,) = sgmesh.json("adopt", "--mesh", str(mesh_file), "--region", EAST, "--apply")
    # THEN the rule got the managed description, and nothing is left to adopt
    assert group["applied"] is True
    (adopted,) = group["rules"]
    assert (adopted["before"], adopted["after"]) == ("kept by hand", rule["Description"])
    (again,) = sgmesh.json("adopt", "--mesh", str(mesh_file), "--region", EAST)
    assert again["rules"] == []
