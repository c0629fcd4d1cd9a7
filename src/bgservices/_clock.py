"""The clock services read and sleep on: the real one, or a test's (``bgservices.testing``).

Every time a service reads (ticks, backoff, restart windows, heartbeats) and every timed wait it
makes goes through one ``Clock``, so a test can swap in a fake one and advance time by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["REAL_CLOCK", "Clock", "RealClock"]


class Clock(Protocol):
    """What a service needs of time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (``time.monotonic``)."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (``time.time``), for timestamps."""
        ...

    def wait_for(
        self, cond: threading.Condition, predicate: Callable[[], bool], timeout: float | None
    ) -> bool:
        """``cond.wait_for(predicate, timeout)`` in this clock's time; *cond* is held."""
        ...


class RealClock:
    """The system's clocks; waits are plain ``Condition.wait_for``."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    @staticmethod
    def wait_for(
        cond: threading.Condition, predicate: Callable[[], bool], timeout: float | None
    ) -> bool:
        return cond.wait_for(predicate, timeout)


REAL_CLOCK: Clock = RealClock()
