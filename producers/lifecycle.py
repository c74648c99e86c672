"""Lambda entry point: lifecycle actions (one from EventBridge, or an SQS batch of them from a
buffering queue) and the seed's true-up event become published snapshots."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from batches.sqs import WholeBatchProcessor, is_sqs_batch
from cloud.clients import ClientFactory
from producers.bootstrap import logger, snapshot_service
from schemas.errors import InvalidEventError
from schemas.lifecycle import AdmissionCheck, LifecycleAction, parse_producer_event


def bind(
    environ: Mapping[str, str], clients: ClientFactory
) -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    """The handler for this environment and these clients (the local runtime binds each region's)."""

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        service = snapshot_service(environ, clients)
        if is_sqs_batch(event):

            def act(items: Sequence[LifecycleAction | AdmissionCheck]) -> Sequence[LifecycleAction]:
                service.check_admissions([item for item in items if isinstance(item, AdmissionCheck)])
                actions = [item for item in items if isinstance(item, LifecycleAction)]
                return service.on_lifecycle_actions(actions).to_retry

            response = process_partial_response(
                event=event,
                record_handler=_action,
                processor=WholeBatchProcessor(act, logger),
                context=context,
            )
            return dict(response)
        published = service.handle(parse_producer_event(event))
        return {"published": [asdict(item) for item in published]}

    return handler


# Lambda's entry point: the function's environment, and boto3's own configuration for the clients.
handler = bind(os.environ, ClientFactory())


def _action(record: SQSRecord) -> LifecycleAction | AdmissionCheck:
    """A buffered record carries the EventBridge event as its body, or the admission barrier's check."""
    try:
        request = parse_producer_event(json.loads(record.body))
    except json.JSONDecodeError as error:
        raise InvalidEventError(f"record {record.message_id} is not JSON: {error}") from None
    if not isinstance(request, LifecycleAction | AdmissionCheck):
        raise InvalidEventError(f"record {record.message_id} is not a lifecycle action")
    return request
