"""Shared fixtures: one moto server per test session (the embedded AWS), reset for each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from cloud.clients import install_client_factory
from cloud.sns_certificates import install_certificate_source
from sgmesh.local.embedded import embedded_aws
from tests.support.mesh import AnyMesh, Provisioner


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The product's own embedded AWS, shared by the session; no setting of the developer's leaks in."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith(("SGMESH_", "AWS_PROFILE"))]:
            patch.delenv(name)
        with embedded_aws() as endpoint:
            yield endpoint


@pytest.fixture
def aws(moto_endpoint: str) -> str:
    """A clean embedded AWS for one test."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    return moto_endpoint


@pytest.fixture
def provisioned(aws: str) -> Iterator[Provisioner]:
    """Provisions meshes on the clean embedded AWS; the client factory a mesh installs for the
    product is uninstalled after the test."""

    def provision(mesh: AnyMesh, instances_per_region: int = 2) -> AnyMesh:
        mesh.provision(instances_per_region)
        return mesh

    yield provision
    install_client_factory(None)
    install_certificate_source(None)
