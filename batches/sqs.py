"""SQS event sources that act on a whole batch at once, with partial batch failures (Powertools)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.base import SuccessResponse
from aws_lambda_powertools.utilities.batch.exceptions import ExceptionInfo
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

Item = TypeVar("Item")


class RetryRequested(Exception):
    """The batch's action asked for this record again (a launch not yet admitted everywhere, say)."""


def is_sqs_batch(event: object) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and isinstance(records, list) and records[0].get("eventSource") == "aws:sqs"


class WholeBatchProcessor(BatchProcessor, Generic[Item]):
    """Validates records one by one (an invalid record fails alone), then hands every valid item to
    `act` at once. `act` returns the items to retry; if it raises, every valid record is retried.

    Built on the processor's own hooks: `success_handler` holds a valid record back instead of
    counting it, and `_clean`, which runs once the records have been handled, acts on the held items
    and reports each record through the base `success_handler` or `failure_handler` before the base
    `_clean` builds the partial batch response.
    """

    def __init__(self, act: Callable[[Sequence[Item]], Sequence[Item]], logger: Logger) -> None:
        # A batch of nothing but poison records is still reported record by record, not raised.
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)
        self._act = act
        self._log = logger
        self._held: list[tuple[Item, dict[str, Any]]] = []

    def _prepare(self) -> None:
        super()._prepare()  # type: ignore[no-untyped-call]
        self._held.clear()

    # Powertools hands the raw record dict here (its type says a data class).
    def success_handler(self, record: Any, result: Item) -> SuccessResponse:
        self._held.append((result, record))
        return "success", result, record

    def _clean(self) -> None:
        # The processor is a context manager: `_clean` also runs when the function dies between two
        # records, and a batch it has not seen whole is not acted on.
        if len(self._held) + len(self.fail_messages) == len(self.records):
            self._act_on_held()
        super()._clean()  # type: ignore[no-untyped-call]

    def _act_on_held(self) -> None:
        if not self._held:
            return
        try:
            retry = self._act([item for item, _record in self._held])
        except Exception as error:  # every failure retries the records through SQS; nothing is dropped
            self._log.exception(
                "applying the batch failed; its records will be retried",
                extra={
                    "error": str(error),
                    "message_ids": [record["messageId"] for _item, record in self._held],
                },
            )
            failure = sys.exc_info()
            for _item, record in self._held:
                self.failure_handler(SQSRecord(record), failure)
            return
        for item, record in self._held:
            if any(item is other for other in retry):
                self.failure_handler(SQSRecord(record), _retry_requested(record))
            else:
                super().success_handler(record, item)


def _retry_requested(record: dict[str, Any]) -> ExceptionInfo:
    error = RetryRequested(f"record {record['messageId']} is to be delivered again")
    return type(error), error, None
