"""A converged local mesh on the shared embedded AWS, and its mesh file, for the CLI tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.clients import ClientFactory
from sgmesh import cli
from sgmesh.local.mesh import LocalMesh
from sgmesh.local.stack import StackSpec
from sgmesh.meshfile import render


@pytest.fixture
def local_mesh(aws: str) -> Iterator[LocalMesh]:
    mesh = LocalMesh(aws, ("us-east-1", "eu-west-1"), StackSpec()).provision(instances_per_region=2)
    mesh.trueup_everywhere()
    assert mesh.run_until_converged().converged
    yield mesh
    mesh.close()


@pytest.fixture
def mesh_file(local_mesh: LocalMesh, aws: str, tmp_path: Path) -> Path:
    path = tmp_path / "sgmesh.toml"
    path.write_text(render(local_mesh.mesh_file(aws)))
    return path


class Run:
    """Runs `sgmesh ...` in-process and returns (exit code, output)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str, clients: ClientFactory | None = None) -> tuple[int, str]:
        self.capsys.readouterr()
        code = cli.main(list(argv), clients)
        return code, self.capsys.readouterr().out

    def json(self, *argv: str, clients: ClientFactory | None = None) -> Any:
        code, out = self(*argv, "--json", clients=clients)
        assert code == 0, out
        return json.loads(out)


@pytest.fixture
def sgmesh(capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(capsys)
