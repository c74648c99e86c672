"""Clients retry throttling in `standard` mode and are built on first use, never at import time."""

from __future__ import annotations

import subprocess
import sys

from cloud.clients import ClientFactory


def test_clients_use_standard_retries_and_are_cached_per_region(aws: str) -> None:
    factory = ClientFactory()
    client = factory.ec2("eu-west-1")
    assert client.meta.config.retries["mode"] == "standard"
    assert client.meta.region_name == "eu-west-1"
    assert factory.ec2("eu-west-1") is client
    assert factory.ec2("us-east-1") is not client


def test_handlers_import_without_settings_or_clients() -> None:
    # A fresh interpreter with no SGMESH_* variables: importing must neither read them nor build clients.
    script = (
        "import sys, cloud.clients as c\n"
        "import producers.lifecycle, producers.trueup, consumers.apply\n"
        "assert c._installed is None, 'a client factory was built at import time'\n"
        "assert 'mypy_boto3_ec2' not in sys.modules\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
