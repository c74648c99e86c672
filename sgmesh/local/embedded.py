"""The embedded AWS: a moto server on a free loopback port, and boto3 sessions that talk to it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import requests
from moto.server import ThreadedMotoServer

from sgmesh.local import rule_descriptions

# Moto accepts any credentials; these only keep boto3 from looking for real ones.
LOCAL_CREDENTIAL = "sgmesh-local"


class EndpointSession(boto3.session.Session):
    """A boto3 session whose clients all talk to `endpoint` with local credentials, whatever the
    process environment says: the local runtime and the CLI hand it to the product's ClientFactory,
    which stays unaware of endpoints."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(
            aws_access_key_id=LOCAL_CREDENTIAL,
            aws_secret_access_key=LOCAL_CREDENTIAL,
            aws_session_token=LOCAL_CREDENTIAL,
            region_name="us-east-1",
        )
        self.endpoint = endpoint

    def client(self, *args: Any, **kwargs: Any) -> Any:
        return super().client(*args, **{**kwargs, "endpoint_url": self.endpoint})


@contextmanager
def embedded_aws() -> Iterator[str]:
    """Start moto on 127.0.0.1 (a free port) and yield its endpoint; stop it on exit."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    rule_descriptions.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        # moto keeps its state per process, shared by every server in it: a new mesh starts from nothing.
        requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
        yield endpoint
    finally:
        server.stop()
