"""Shared fixtures: one moto server per test session (the embedded AWS), reset for each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from cloud.sns_certificates import install_certificate_source
from sgmesh.local.embedded import LOCAL_CREDENTIAL, embedded_aws
from tests.support.mesh import AnyMesh, Provisioner


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The product's own embedded AWS, shared by the session; no setting of the developer's leaks in.

    The local runtime needs no environment; the tests' own plain boto3 clients, and the deploy script's
    default session, find the embedded AWS through boto3's environment variables, set here.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith(("SGMESH_", "AWS_PROFILE"))]:
            patch.delenv(name)
        with embedded_aws() as endpoint:
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                patch.setenv(name, LOCAL_CREDENTIAL)
            patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
            patch.setenv("AWS_ENDPOINT_URL", endpoint)
            yield endpoint


@pytest.fixture
def aws(moto_endpoint: str) -> str:
    """A clean embedded AWS for one test."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    return moto_endpoint


@pytest.fixture
def provisioned(aws: str) -> Iterator[Provisioner]:
    """Provisions meshes on the clean embedded AWS; the certificates a mesh installs for the product
    are uninstalled after the test."""

    def provision(mesh: AnyMesh, instances_per_region: int = 2) -> AnyMesh:
        mesh.provision(instances_per_region)
        return mesh

    yield provision
    install_certificate_source(None)
