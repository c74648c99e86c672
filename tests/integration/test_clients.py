"""Clients retry throttling in `standard` mode and are built on first use, never at import time."""

from __future__ import annotations

import subprocess
import sys

from cloud.clients import ClientFactory


def test_clients_use_standard_retries_and_are_cached_per_region(aws: str) -> None:
    factory = ClientFactory()
    client = factory.ec2("eu-west-1")
    assert client.meta.config.retries["mode"] == "standard"  # type: ignore[attr-defined]  # not in the stubs
    assert client.meta.region_name == "eu-west-1"
    assert factory.ec2("eu-west-1") is client
    assert factory.ec2("us-east-1") is not client


def test_handlers_import_without_settings_or_clients() -> None:
    # A fresh interpreter with no SGMESH_* variables: importing must neither read them nor build clients.
    # Each handler module binds Lambda's handler to a client factory of its own, which stays empty.
    script = (
        "import gc, sys\n"
        "from cloud.clients import ClientFactory\n"
        "import producers.lifecycle, producers.trueup, consumers.apply\n"
        "factories = [o for o in gc.get_objects() if isinstance(o, ClientFactory)]\n"
        "assert len(factories) == 3, factories\n"
        "assert all(f._session is None and not f._clients for f in factories), 'a client was built'\n"
        "assert 'mypy_boto3_ec2' not in sys.modules\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
