"""Counts throttled AWS calls as botocore retries them, so throttling is visible, not only slow."""

from __future__ import annotations

from typing import Any

# The error codes AWS services use for "slow down" (EC2's is RequestLimitExceeded).
THROTTLING_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
    }
)


class ThrottleCounter:
    """Observes every attempt's response on the clients it is registered on; never changes a retry."""

    def __init__(self) -> None:
        self.count = 0

    def register(self, client: Any) -> None:
        client.meta.events.register("needs-retry", self._observe)

    def _observe(self, response: Any = None, **_: Any) -> None:
        if response is None:
            return
        _http, parsed = response
        if parsed.get("Error", {}).get("Code") in THROTTLING_CODES:
            self.count += 1
