"""The embedded AWS: a moto server on a free loopback port, and the environment that points at it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from moto.server import ThreadedMotoServer

# Moto accepts any credentials; these only keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sgmesh-local",
    "AWS_SECRET_ACCESS_KEY": "sgmesh-local",
    "AWS_SESSION_TOKEN": "sgmesh-local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def embedded_aws() -> Iterator[str]:
    """Start moto on 127.0.0.1 (a free port), point boto3 at it, and yield its endpoint."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its state per process, shared by every server in it: a new mesh starts from nothing.
    requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
    saved = {name: os.environ.get(name) for name in (*LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL")}
    os.environ.update({**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
    try:
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()
