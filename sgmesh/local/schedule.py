"""Plays the EventBridge schedule that fires the true-up in every region."""

from __future__ import annotations

from collections.abc import Callable

from sgmesh.local.clock import SimClock


class Schedule:
    def __init__(self, clock: SimClock, interval_seconds: float, fire: Callable[[], None]) -> None:
        self._clock = clock
        self._interval = interval_seconds
        self._fire = fire
        self.next_due = clock.now + interval_seconds
        self.fired = 0

    def fire_due(self) -> int:
        if self._clock.now < self.next_due:
            return 0
        self._fire()
        self.fired += 1
        self.next_due = self._clock.now + self._interval
        return 1
