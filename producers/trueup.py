"""Lambda entry point: scheduled or manual true-up, a fresh snapshot of every local group."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cloud.clients import ClientFactory
from producers.bootstrap import logger, snapshot_service
from schemas.lifecycle import TrueupRequest


def bind(
    environ: Mapping[str, str], clients: ClientFactory
) -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    """The handler for this environment and these clients (the local runtime binds each region's)."""

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Any event triggers a true-up; `{"resync": true}` marks it as a resync for a recovering region."""
        request = TrueupRequest(resync=isinstance(event, dict) and event.get("resync") is True)
        published = snapshot_service(environ, clients).handle(request)
        return {"published": [asdict(item) for item in published]}

    return handler


# Lambda's entry point: the function's environment, and boto3's own configuration for the clients.
handler = bind(os.environ, ClientFactory())
