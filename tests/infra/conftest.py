"""Fixtures for the infrastructure tests: the template, its offline SAM transform, moto's gaps filled."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest

from infra.deploy.template import load_template
from infra.deploy.transform import transform
from tests.infra import moto_gaps

CODE_URI = "s3://sgmesh-artifacts/sgmesh/code.zip"
LAYER_URI = "s3://sgmesh-artifacts/sgmesh/layer.zip"


@pytest.fixture(scope="session", autouse=True)
def _moto_gaps() -> None:
    moto_gaps.install()


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def transformed(sam_template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation receives it from the deploy script (transformed offline)."""
    return transform(sam_template, "us-east-1", CODE_URI, LAYER_URI)


@pytest.fixture(scope="session")
def fake_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-ins for code.zip and layer.zip: moto stores Lambda code but never runs it."""
    directory = tmp_path_factory.mktemp("artifacts")
    for name in ("code.zip", "layer.zip"):
        with zipfile.ZipFile(directory / name, "w") as archive:
            archive.writestr(f"{name}.txt", name)
    return directory
