"""A BatchProcessor that validates records one by one and applies the batch's snapshots once."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from schemas.events import MembershipSnapshot


class CoalescingBatchProcessor(BatchProcessor):
    """Invalid records fail alone; if applying the valid ones fails, each of them fails, to be retried."""

    def __init__(self, apply_batch: Callable[[Sequence[MembershipSnapshot]], object], logger: Logger) -> None:
        # A batch of nothing but poison records is still reported record by record, not raised.
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)
        self._apply_batch = apply_batch
        self._log = logger

    def process(self) -> list[tuple[Any, ...]]:
        results = super().process()
        accepted = [(result, record) for status, result, record in results if status == "success"]
        if not accepted:
            return results
        try:
            self._apply_batch([snapshot for snapshot, _record in accepted])
        except Exception as error:  # every failure retries the records through SQS; nothing is dropped
            self._log.exception(
                "applying the batch failed; its records will be retried",
                extra={
                    "error": str(error),
                    "message_ids": [record["messageId"] for _snapshot, record in accepted],
                },
            )
            failure = sys.exc_info()
            self.success_messages.clear()
            return [self.failure_handler(SQSRecord(record), failure) for _snapshot, record in accepted]
        return results
