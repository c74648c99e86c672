"""SQS event sources that act on a whole batch at once, with partial batch failures (Powertools)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

Item = TypeVar("Item")


def is_sqs_batch(event: object) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and isinstance(records, list) and records[0].get("eventSource") == "aws:sqs"


class WholeBatchProcessor(BatchProcessor, Generic[Item]):
    """Validates records one by one (an invalid record fails alone), then hands every valid item to
    `act` at once. `act` returns the items to retry; if it raises, every valid record is retried."""

    def __init__(self, act: Callable[[Sequence[Item]], Sequence[Item]], logger: Logger) -> None:
        # A batch of nothing but poison records is still reported record by record, not raised.
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)
        self._act = act
        self._log = logger

    def process(self) -> list[tuple[Any, ...]]:
        results = super().process()
        accepted = [(item, record) for status, item, record in results if status == "success"]
        if not accepted:
            return results
        try:
            retry = self._act([item for item, _record in accepted])
        except Exception as error:  # every failure retries the records through SQS; nothing is dropped
            self._log.exception(
                "applying the batch failed; its records will be retried",
                extra={
                    "error": str(error),
                    "message_ids": [record["messageId"] for _item, record in accepted],
                },
            )
            self.success_messages.clear()
            failure = sys.exc_info()
            return [self.failure_handler(SQSRecord(record), failure) for _item, record in accepted]
        retried = [record for item, record in accepted if any(item is other for other in retry)]
        for record in retried:
            self.success_messages.remove(record)
            self.fail_messages.append(SQSRecord(record))
        return results
