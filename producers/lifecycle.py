"""Lambda entry point: a lifecycle action (or the seed's true-up event) becomes a published snapshot."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from producers.bootstrap import logger, snapshot_service
from schemas.lifecycle import parse_producer_event


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    published = snapshot_service().handle(parse_producer_event(event))
    return {"published": [asdict(item) for item in published]}
