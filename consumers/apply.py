"""Lambda entry point: an SQS batch of snapshot envelopes, applied with partial batch failures."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from batches.sqs import WholeBatchProcessor
from cloud.clients import ClientFactory
from consumers.bootstrap import apply_service, logger
from consumers.metrics import metrics
from schemas.events import Event


def bind(
    environ: Mapping[str, str], clients: ClientFactory
) -> Callable[[dict[str, Any], LambdaContext], PartialItemFailureResponse]:
    """The handler for this environment and these clients (the local runtime binds each region's)."""

    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        service = apply_service(environ, clients)
        throttled_before = clients.throttles.count

        def accept(record: SQSRecord) -> Event:
            return service.accept(record.body, record.message_id)

        def apply(events: Sequence[Event]) -> Sequence[Event]:
            return service.apply(events).retry

        response = process_partial_response(
            event=event,
            record_handler=accept,
            processor=WholeBatchProcessor(apply, logger),
            context=context,
        )
        service.count_invocation(
            retried=len(response.get("batchItemFailures", [])),
            throttled=clients.throttles.count - throttled_before,
        )
        return response

    return handler


# Lambda's entry point: the function's environment, and boto3's own configuration for the clients.
handler = bind(os.environ, ClientFactory())
