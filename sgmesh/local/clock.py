"""Simulated time for the emulated parts of AWS (timeouts, windows, schedules)."""

from __future__ import annotations


class SimClock:
    """Seconds since the mesh started; only the runtime moves it forward."""

    def __init__(self) -> None:
        self.now = 0.0

    def advance_to(self, moment: float) -> None:
        self.now = max(self.now, moment)
