"""The emulated EventBridge -> Lambda asynchronous invocation: two retries, 60 s and 120 s apart."""

from __future__ import annotations

from typing import Any

from sgmesh.local.clock import SimClock
from sgmesh.local.eventbridge import EventBus, FailedDelivery

EVENT = {"id": "e-1", "detail": {}}


class Producer:
    """Fails its first `failures` invocations."""

    def __init__(self, clock: SimClock, failures: int) -> None:
        self.clock = clock
        self.failures = failures
        self.attempts: list[tuple[float, str, dict[str, Any]]] = []

    def __call__(self, region: str, event: dict[str, Any]) -> None:
        self.attempts.append((self.clock.now, region, event))
        if len(self.attempts) <= self.failures:
            raise RuntimeError(f"attempt {len(self.attempts)} failed")


def run_for(bus: EventBus, clock: SimClock, seconds: float) -> None:
    """Dispatch every second of simulated time, as the runtime's loop would at its finest."""
    for second in range(int(seconds) + 1):
        clock.advance_to(second)
        bus.dispatch_due()


def test_given_a_delivery_that_keeps_failing_then_it_is_retried_at_60_and_180_s_and_then_failed() -> None:
    # GIVEN a producer that always fails
    clock = SimClock()
    producer = Producer(clock, failures=99)
    bus = EventBus(clock, producer)

    # WHEN an event is put at 10 s and an hour of simulated time passes
    clock.advance_to(10)
    bus.put("us-west-2", EVENT)
    run_for(bus, clock, 3600)

    # THEN it was attempted three times: at once, 60 s later, and 120 s after that
    assert producer.attempts == [
        (10, "us-west-2", EVENT),
        (70, "us-west-2", EVENT),
        (190, "us-west-2", EVENT),
    ]
    # ... and then recorded as failed, with the last error
    assert bus.failed == [FailedDelivery("us-west-2", EVENT, "RuntimeError('attempt 3 failed')")]
    assert bus.delivered == 0
    assert bus.next_due is None


def test_given_a_delivery_that_fails_once_then_the_retry_delivers_it() -> None:
    clock = SimClock()
    producer = Producer(clock, failures=1)
    bus = EventBus(clock, producer)

    bus.put("us-east-1", EVENT)
    assert bus.dispatch_due() == 1
    assert bus.next_due == 60
    clock.advance_to(59)
    assert bus.dispatch_due() == 0, "not before the retry delay"
    clock.advance_to(60)
    assert bus.dispatch_due() == 1

    assert [moment for moment, _region, _event in producer.attempts] == [0, 60]
    assert bus.delivered == 1
    assert bus.failed == []
    assert bus.next_due is None
