"""`make deploy` writes the operator's mesh file when it is absent or unedited, and never over an edit."""

from __future__ import annotations

from pathlib import Path

from infra.deploy.meshfile import write_mesh_file
from schemas.settings import PortSpec
from sgmesh.meshfile import MeshFile, RegionEntry, load

TOPIC = "arn:aws:sns:us-east-1:123456789012:sgmesh-demo"


def mesh(*groups: str) -> MeshFile:
    return MeshFile(
        cluster="demo",
        ports=(PortSpec.parse("tcp:7000"),),
        regions={
            "us-east-1": RegionEntry(
                table="sgmesh-demo-Table-1",
                topic_arn=TOPIC,
                asg_names=groups,
                security_group_ids=("sg-0123456789abcdef0",),
            )
        },
    )


def test_a_fresh_deployment_writes_the_file_and_the_cli_reads_it_back(tmp_path: Path) -> None:
    path = tmp_path / "sgmesh.mesh.toml"
    written = write_mesh_file(path, mesh("cassandra"))
    assert written.written == path
    assert load(path) == mesh("cassandra")
    assert "written" in written.report()


def test_the_same_deployment_again_leaves_the_file_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "sgmesh.mesh.toml"
    write_mesh_file(path, mesh("cassandra"))
    before = path.stat().st_mtime_ns
    written = write_mesh_file(path, mesh("cassandra"))
    assert written.written is None
    assert path.stat().st_mtime_ns == before
    assert "unchanged" in written.report()


def test_a_changed_deployment_replaces_a_file_nobody_edited(tmp_path: Path) -> None:
    path = tmp_path / "sgmesh.mesh.toml"
    write_mesh_file(path, mesh("cassandra"))
    written = write_mesh_file(path, mesh("cassandra", "analytics"))
    assert written.written == path
    assert written.diff is None
    assert load(path).regions["us-east-1"].asg_names == ("cassandra", "analytics")


def test_an_edited_file_is_kept_and_the_deployments_goes_beside_it_with_the_diff(tmp_path: Path) -> None:
    # GIVEN a mesh file the deploy wrote, then the operator edited
    path = tmp_path / "sgmesh.mesh.toml"
    write_mesh_file(path, mesh("cassandra"))
    edited = path.read_text().replace("rule_quota = 60", "rule_quota = 50")
    path.write_text(edited)
    # WHEN the next deploy has something new
    written = write_mesh_file(path, mesh("cassandra", "analytics"))
    # THEN the operator's file is untouched; the deployment's is beside it, and the diff names both
    assert path.read_text() == edited
    assert written.written == tmp_path / "sgmesh.mesh.toml.new"
    assert load(written.written).regions["us-east-1"].asg_names == ("cassandra", "analytics")
    assert written.diff is not None
    diff = written.diff.read_text()
    assert "-rule_quota = 50" in diff
    assert '+asg_names = ["cassandra", "analytics"]' in diff
    assert str(written.diff) in written.report()


def test_a_hand_written_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "sgmesh.mesh.toml"
    path.write_text('cluster = "demo"\n')
    written = write_mesh_file(path, mesh("cassandra"))
    assert path.read_text() == 'cluster = "demo"\n'
    assert written.written == tmp_path / "sgmesh.mesh.toml.new"
