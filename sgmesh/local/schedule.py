"""Plays the EventBridge schedule that fires the true-up in every region."""

from __future__ import annotations

from collections.abc import Callable

from sgmesh.local.clock import SimClock


class Schedule:
    """A rate schedule: fires every `interval_seconds` of simulated time, on the rate, not after the
    last (late) firing, and at most once per call however late it is."""

    def __init__(self, clock: SimClock, interval_seconds: float, fire: Callable[[], None]) -> None:
        self._clock = clock
        self._interval = interval_seconds
        self._fire = fire
        self.next_due = clock.now + interval_seconds
        self.fired = 0

    def fire_due(self) -> int:
        if self._clock.now < self.next_due:
            return 0
        while self.next_due <= self._clock.now:
            self.next_due += self._interval
        self.fired += 1
        self._fire()
        return 1
