"""Lambda entry point: scheduled or manual true-up, a fresh snapshot of every local group."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from producers.bootstrap import logger, snapshot_service
from schemas.lifecycle import TrueupRequest


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Any event triggers a true-up; `{"resync": true}` marks it as a resync for a recovering region."""
    request = TrueupRequest(resync=isinstance(event, dict) and event.get("resync") is True)
    published = snapshot_service().handle(request)
    return {"published": [asdict(item) for item in published]}
