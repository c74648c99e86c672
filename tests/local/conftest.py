"""Fixtures for the local runtime's tests: a two-region mesh (three are rarely needed, and cost time)."""

from __future__ import annotations

import pytest

from tests.support.mesh import TWO_REGIONS, Mesh, Provisioner


@pytest.fixture
def mesh(aws: str, provisioned: Provisioner) -> Mesh:
    return provisioned(Mesh(aws, TWO_REGIONS))
