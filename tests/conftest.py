"""Shared fixtures: one moto server per test session (the embedded AWS), reset for each test."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
import requests
from moto.server import ThreadedMotoServer

from cloud.clients import install_client_factory
from tests.support.mesh import AnyMesh, Provisioner

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    # One line per HTTP request drowns the product's own logs in failure reports.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(name, value)
        for name in [name for name in os.environ if name.startswith(("SGMESH_", "AWS_PROFILE"))]:
            patch.delenv(name)
        yield endpoint
    server.stop()


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
