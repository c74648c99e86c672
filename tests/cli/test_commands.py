"""Every operator command against a local mesh: tables, JSON, and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from sgmesh.local.mesh import LocalMesh
from sgmesh.local.stack import create_table
from tests.cli.conftest import Run
from tests.support.environment import point_nowhere

EAST, WEST = "us-east-1", "eu-west-1"


def source_key(region: str) -> str:
    return f"123456789012/{region}/sgmesh-demo-{region}"


def test_status_of_a_converged_mesh_shows_no_source_behind_and_no_drift(sgmesh: Run, mesh_file: Path) -> None:
    statuses = sgmesh.json("status", "--mesh", str(mesh_file))

    assert [status["region"] for status in statuses] == [EAST, WEST]
    published = {source["source"]: source["published_version"] for source in statuses[0]["sources"]}
    assert sorted(published) == sorted([source_key(EAST), source_key(WEST)])
    for status in statuses:
        assert {source["source"]: source["applied_version"] for source in status["sources"]} == published
        assert all(source["members"] == 2 for source in status["sources"])
        (group,) = status["groups"]
        assert (group["to_authorize"], group["to_revoke"], group["rules_after"]) == (0, 0, {"ipv4": 8})


def test_status_shows_a_source_behind_and_drift_while_a_snapshot_is_undelivered(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    # GIVEN us-east-1 scaled out and published, but eu-west-1 has not received it yet
    local_mesh.cut_off(WEST)
    local_mesh.scale(EAST, 3)
    local_mesh.run_until_converged()

    (west,) = sgmesh.json("status", "--mesh", str(mesh_file), "--region", WEST)

    east = next(source for source in west["sources"] if source["source"] == source_key(EAST))
    assert east["applied_version"] < east["published_version"]
    code, table = sgmesh("status", "--mesh", str(mesh_file), "--region", WEST)
    assert code == 0
    assert "sources" in table
    assert "behind" in table
    assert "yes" in table
    assert "security groups" in table


def test_plan_lists_the_changes_and_makes_none(sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh) -> None:
    # GIVEN someone removed one managed rule from eu-west-1's group by hand
    ec2 = boto3.client("ec2", region_name=WEST)
    rule = next(r for r in local_mesh.ingress(WEST) if r.get("Description", "").startswith("sgmesh:demo"))
    ec2.revoke_security_group_ingress(
        GroupId=local_mesh.stacks[WEST].security_group_id, SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]]
    )
    before = local_mesh.managed_permissions(WEST)

    (review,) = sgmesh.json("plan", "--mesh", str(mesh_file), "--region", WEST)

    assert review["authorize"] == [f"tcp:{rule['FromPort']}-{rule['ToPort']} from {rule['CidrIpv4']}"]
    assert review["revoke"] == []
    assert local_mesh.managed_permissions(WEST) == before
    code, table = sgmesh("plan", "--mesh", str(mesh_file), "--region", WEST)
    assert code == 0
    assert "+ authorize" in table


def test_replay_rebuilds_the_group_from_the_table(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    ec2 = boto3.client("ec2", region_name=WEST)
    managed = [r for r in local_mesh.ingress(WEST) if r.get("Description", "").startswith("sgmesh:demo")]
    ec2.revoke_security_group_ingress(
        GroupId=local_mesh.stacks[WEST].security_group_id,
        SecurityGroupRuleIds=[rule["SecurityGroupRuleId"] for rule in managed[:3]],
    )
    assert not local_mesh.converged()

    (done,) = sgmesh.json("replay", "--mesh", str(mesh_file), "--region", WEST)

    assert len(done["authorize"]) == 3
    assert local_mesh.converged()


def test_trueup_publishes_every_group_of_the_named_region(sgmesh: Run, mesh_file: Path) -> None:
    (before,) = [
        s for s in sgmesh.json("status", "--mesh", str(mesh_file))[0]["sources"] if EAST in s["source"]
    ]

    published = sgmesh.json("trueup", "--mesh", str(mesh_file), "--region", EAST)

    assert [(item["group"], item["members"]) for item in published] == [(f"sgmesh-demo-{EAST}", 2)]
    assert published[0]["version"] > before["published_version"]


def test_resync_asks_every_region_for_its_sources_and_a_recreated_table_catches_up(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    # GIVEN eu-west-1's table deleted and created again (empty), its group untouched
    table = local_mesh.stacks[WEST].table_name
    boto3.client("dynamodb", region_name=WEST).delete_table(TableName=table)
    create_table(local_mesh.session, WEST, table)
    before = local_mesh.managed_permissions(WEST)
    (east,) = sgmesh.json("status", "--mesh", str(mesh_file), "--region", EAST)
    east_version = next(s["published_version"] for s in east["sources"] if s["source"] == source_key(EAST))

    # WHEN the operator asks for a resync of eu-west-1
    requested = sgmesh.json("resync", "--mesh", str(mesh_file), "--region", WEST)

    # THEN a request went on eu-west-1's own topic; us-east-1's consumer answered with its source's
    # snapshot, which eu-west-1 now stores at the version it had, and no rule changed meanwhile
    assert (requested["region"], requested["topic_arn"]) == (WEST, local_mesh.stacks[WEST].topic_arn)
    assert local_mesh.run_until_converged().converged
    (west,) = sgmesh.json("status", "--mesh", str(mesh_file), "--region", WEST)
    assert {source["source"]: source["applied_version"] for source in west["sources"]} == {
        source_key(EAST): east_version
    }
    assert local_mesh.managed_permissions(WEST) == before
    code, output = sgmesh("resync", "--mesh", str(mesh_file), "--region", WEST)
    assert code == 0
    assert "resync requested" in output


def test_events_show_applied_snapshots_and_rule_changes_with_their_causes(
    sgmesh: Run, mesh_file: Path
) -> None:
    events = sgmesh.json("events", "--mesh", str(mesh_file), "--region", WEST)

    applied = [e for e in events if e["kind"] == "snapshot-applied"]
    changed = [e for e in events if e["kind"] == "rules-changed"]
    assert {(e["source"], e["cause"], e["members"]) for e in applied} == {
        (source_key(EAST), "trueup", 2),
        (source_key(WEST), "trueup", 2),
    }
    assert all(isinstance(e["version"], int) for e in applied)
    assert sum(len(e["authorized"]) for e in changed) == 8
    assert all(e["causes"] for e in changed)

    only_east = sgmesh.json(
        "events", "--mesh", str(mesh_file), "--region", WEST, "--source", source_key(EAST)
    )
    assert {e.get("source") for e in only_east if e["kind"] == "snapshot-applied"} == {source_key(EAST)}
    code, table = sgmesh("events", "--mesh", str(mesh_file), "--region", WEST)
    assert code == 0
    assert "caused by" in table


def test_a_missing_mesh_file_is_a_usage_error_naming_it(sgmesh: Run, tmp_path: Path) -> None:
    code, out = sgmesh("status", "--mesh", str(tmp_path / "nowhere.toml"))

    assert code == 2
    assert "nowhere.toml" in out
    assert "not found" in out


def test_an_invalid_mesh_file_names_the_key_and_the_value(sgmesh: Run, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'cluster = "demo"\nports = "tcp:7000"\n\n[regions.us-east-1]\ntable = "t-1"\n'
        'topic_arn = "arn:aws:sqs:us-east-1:123456789012:oops"\nasg_names = ["g"]\n'
        'security_group_ids = ["sg-0123456789abcdef0"]\n'
    )

    code, out = sgmesh("status", "--mesh", str(path))

    assert code == 2
    assert "regions.us-east-1.topic_arn" in out
    assert "arn:aws:sqs:us-east-1:123456789012:oops" in out


def test_an_unknown_region_lists_the_known_ones(sgmesh: Run, mesh_file: Path) -> None:
    code, out = sgmesh("plan", "--mesh", str(mesh_file), "--region", "ap-south-1")

    assert code == 2
    assert "'ap-south-1' is not in the mesh file" in out
    assert "eu-west-1, us-east-1" in out


def test_a_replay_over_the_rule_quota_fails_and_says_why(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    text = mesh_file.read_text().replace("rule_quota = 60", "rule_quota = 5")
    mesh_file.write_text(text)
    ec2 = boto3.client("ec2", region_name=WEST)
    rule = next(r for r in local_mesh.ingress(WEST) if r.get("Description", "").startswith("sgmesh:demo"))
    ec2.revoke_security_group_ingress(
        GroupId=local_mesh.stacks[WEST].security_group_id, SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]]
    )

    code, out = sgmesh("replay", "--mesh", str(mesh_file), "--region", WEST)

    assert code == 1
    assert local_mesh.stacks[WEST].security_group_id in out
    assert "quota of 5" in out


def test_a_local_mesh_file_is_enough_whatever_the_environment_says(
    sgmesh: Run, mesh_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a process environment whose AWS settings lead nowhere
    point_nowhere(monkeypatch)
    before = dict(os.environ)

    # WHEN the operator asks for the status of the local mesh
    statuses = sgmesh.json("status", "--mesh", str(mesh_file))

    # THEN the CLI reached the mesh file's endpoint, and left the environment alone
    assert [status["region"] for status in statuses] == [EAST, WEST]
    assert dict(os.environ) == before


def test_status_shows_per_source_the_version_every_region_enforces_and_the_regions_behind(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    # GIVEN a converged mesh, every region's acknowledgements recorded by the sources' regions
    (east,) = sgmesh.json("status", "--mesh", str(mesh_file), "--region", EAST)
    (own,) = east["convergence"]
    assert (own["source"], own["behind"], own["waiting_launches"]) == (source_key(EAST), [], 0)
    assert own["enforced_everywhere"] == own["published_version"]

    # WHEN us-east-1 scales out while eu-west-1 receives nothing
    local_mesh.cut_off(WEST)
    local_mesh.scale(EAST, 3)
    local_mesh.run_until_converged()

    # THEN us-east-1's source is enforced everywhere only at its previous version, eu-west-1 behind
    (east,) = sgmesh.json("status", "--mesh", str(mesh_file), "--region", EAST)
    (now,) = east["convergence"]
    assert now["behind"] == [f"123456789012/{WEST}"]
    assert now["enforced_everywhere"] == own["published_version"] < now["published_version"]
    code, table = sgmesh("status", "--mesh", str(mesh_file), "--region", EAST)
    assert code == 0
    assert "its sources across the mesh" in table


def test_events_show_the_acknowledgements_of_the_regions_own_sources(sgmesh: Run, mesh_file: Path) -> None:
    events = sgmesh.json("events", "--mesh", str(mesh_file), "--region", EAST)

    acknowledged = {(e["source"], e["acknowledged_by"]) for e in events if e["kind"] == "acknowledged"}
    assert acknowledged == {(source_key(EAST), f"123456789012/{region}") for region in (EAST, WEST)}
    code, table = sgmesh("events", "--mesh", str(mesh_file), "--region", EAST)
    assert code == 0
    assert "acknowledged" in table
