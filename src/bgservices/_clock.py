"""The clock services read and sleep on: the real one, or a test's (``bgservices.testing``).

Every time a service reads (ticks, backoff, restart windows, heartbeats) and every timed wait it
makes, in a thread or on an event loop, goes through one ``Clock``, so a test can swap in a fake
one and advance time by hand.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["REAL_CLOCK", "Clock", "RealClock", "Timer"]

_T = TypeVar("_T")


class Timer(Protocol):
    """A callback scheduled by ``Clock.call_later`` (an ``asyncio.TimerHandle`` on the real one)."""

    def cancel(self) -> None:
        """Do not run it, if it has not run yet."""
        ...


class Clock(Protocol):
    """What a service needs of time."""

    @property
    def random(self) -> random.Random | None:
        """Where jitter and backoff draw from; None: the ``random`` module. A test's clock
        gives a seeded ``random.Random``, so that a run draws the same every time."""
        ...

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

    def call_later(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        callback: Callable[[_T], object],
        arg: _T,
        /,
    ) -> Timer:
        """``loop.call_later(delay, callback, arg)`` with *delay* in this clock's time: the timed
        waits of async services. Called on *loop*'s thread, as ``loop.call_later`` is."""
        ...


class RealClock:
    """The system's clocks; waits are plain ``Condition.wait_for``."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)
    random: random.Random | None = None

    @staticmethod
    def wait_for(
        cond: threading.Condition, predicate: Callable[[], bool], timeout: float | None
    ) -> bool:
        return cond.wait_for(predicate, timeout)

    @staticmethod
    def call_later(
        loop: asyncio.AbstractEventLoop,
        delay: float,
        callback: Callable[[_T], object],
        arg: _T,
        /,
    ) -> Timer:
        # One argument, not *args: the real path allocates nothing more than the loop does.
        return loop.call_later(delay, callback, arg)


REAL_CLOCK: Clock = RealClock()
