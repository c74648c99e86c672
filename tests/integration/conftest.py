"""Fixtures for integration tests: a provisioned three-region mesh on the embedded AWS."""

from __future__ import annotations

import pytest

from tests.support.mesh import Mesh, Provisioner


@pytest.fixture
def mesh(aws: str, provisioned: Provisioner) -> Mesh:
    return provisioned(Mesh(aws))
