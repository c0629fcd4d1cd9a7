"""``PeriodicService``: call ``tick()`` every ``interval`` seconds, on time, without drift."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from .errors import DoNotRestart
from .options import option
from .service import Service, iso_time

__all__ = ["PeriodicService", "Schedule"]


class Schedule:
    """When the next tick is due, as plain arithmetic on monotonic times.

    ``fixed_rate`` fires at ``start + k * interval``: a slow tick never shifts the ones after
    it, and slots that passed while a tick overran are skipped, not fired in a burst.
    ``fixed_delay`` fires ``interval`` after the previous tick ended. Jitter, drawn anew for
    each tick from ``[0, jitter]``, is added to the nominal time and never carried forward, so
    lateness stays bounded by ``jitter``. Being pure, it can be driven by a simulated clock.
    """

    def __init__(
        self,
        kind: Literal["fixed_rate", "fixed_delay"],
        interval: float,
        start: float,
        jitter: float = 0.0,
        rng: Callable[[float, float], float] | None = None,
    ) -> None:
        self.kind, self.interval, self.start, self.jitter = kind, interval, start, jitter
        if rng is None and jitter > 0:
            import random  # only services with jitter pay for it

            rng = random.uniform
        self._uniform = rng
        self.index = 0
        self.skipped = 0

    def first(self) -> float:
        """When the first tick is due."""
        return self.start + self._jitter()

    def after(self, tick_ended: float) -> float:
        """When the tick after the one that ended at *tick_ended* is due."""
        if self.kind == "fixed_delay":
            return tick_ended + self.interval + self._jitter()
        slot = self.index + 1
        if self.start + slot * self.interval < tick_ended:
            first_free = math.ceil((tick_ended - self.start) / self.interval)
            self.skipped += first_free - slot
            slot = first_free
        self.index = slot
        return self.start + slot * self.interval + self._jitter()

    def _jitter(self) -> float:
        return self._uniform(0.0, self.jitter) if self._uniform and self.jitter > 0 else 0.0


class PeriodicService(Service):
    """Calls ``tick()`` every ``interval`` seconds until stopped.

    A tick that raises is logged with its traceback and counted; ticking goes on. After
    ``max_consecutive_errors`` failing ticks in a row the service fails and its restart policy
    applies. Ticks never overlap: they run one after another in the service thread.
    """

    interval: float = option(default=60.0, gt=0, help="Seconds between ticks.")
    initial_delay: float = option(
        default=0.0, ge=0, help="Seconds before the first tick (0: at start)."
    )
    jitter: float = option(
        default=0.0,
        ge=0,
        help="Up to this many seconds added to each tick's time; never accumulates.",
    )
    schedule: Literal["fixed_rate", "fixed_delay"] = option(
        default="fixed_rate",
        help="fixed_rate: on a grid from the start, no drift, missed ticks skipped; "
        "fixed_delay: interval measured from the end of the previous tick.",
    )
    max_consecutive_errors: int | None = option(
        default=None,
        ge=1,
        help="Fail the service after this many failing ticks in a row (no limit).",
    )

    _instance_attributes = frozenset(
        {"ticks", "errors", "consecutive_errors", "overruns", "last_tick_at", "last_tick_duration"}
    )

    def tick(self) -> None:
        """One round of the periodic work."""
        raise NotImplementedError(f"{type(self).__name__} must implement tick()")

    def _new_run(self) -> None:
        self.ticks = 0
        self.errors = 0
        self.consecutive_errors = 0
        self.overruns = 0
        self.last_tick_at: float | None = None
        self.last_tick_duration: float | None = None
        self._schedule: Schedule | None = None
        self._next_at: float | None = None
        super()._new_run()

    def run(self) -> None:
        self._new_schedule()
        while not self._wait_until(self._due()):
            begun = self._clock.monotonic()
            try:
                self.tick()
            except Exception as exc:
                self._tick_failed(exc)
            else:
                self.consecutive_errors = 0
            finally:
                self._tick_ended(begun)

    # Shared with ``aio.AsyncPeriodicService``, which awaits tick() between the same calls.

    def _new_schedule(self) -> None:
        """A fresh schedule for this run, from now."""
        self.consecutive_errors = 0
        chance = getattr(self._clock, "random", None)  # a test's clock may fix the draws
        schedule = self._schedule = Schedule(
            self.schedule,
            self.interval,
            self._clock.monotonic() + self.initial_delay,
            self.jitter,
            chance.uniform if chance is not None else None,
        )
        self._next_at = schedule.first()

    def _due(self) -> float:
        """When the next tick is due."""
        assert self._next_at is not None
        return self._next_at

    def _tick_failed(self, exc: Exception) -> None:
        """A tick raised: counted and logged; re-raised (to end the run) past the limit."""
        if isinstance(exc, DoNotRestart):
            raise exc
        self.errors += 1
        self.consecutive_errors += 1
        self._record_error(exc)
        self._emit("service.tick_failed", "error", exc=exc, consecutive=self.consecutive_errors)
        limit = self.max_consecutive_errors
        if limit is not None and self.consecutive_errors >= limit:
            raise exc

    def _tick_ended(self, begun: float) -> None:
        """Bookkeeping after every tick, and when the next one is due."""
        now = self._clock.monotonic()
        duration = now - begun
        self.ticks += 1
        self.last_tick_at = self._clock.time()
        self.last_tick_duration = round(duration, 6)
        if duration > self.interval:
            self.overruns += 1
        if self._schedule is not None:
            self._next_at = self._schedule.after(now)

    def summary(self) -> str:
        return f"ticks={self.ticks} errors={self.errors}"

    def _status_fields(self) -> dict[str, Any]:
        next_at = self._next_at
        return {
            **super()._status_fields(),
            "ticks": self.ticks,
            "errors": self.errors,
            "consecutive_errors": self.consecutive_errors,
            "overruns": self.overruns,
            "skipped": self._schedule.skipped if self._schedule else 0,
            "last_tick_at": iso_time(self.last_tick_at),
            "last_tick_duration": self.last_tick_duration,
            "next_tick_in": (
                round(max(0.0, next_at - self._clock.monotonic()), 3)
                if next_at is not None and self.state == "running"
                else None
            ),
        }

    def _wait_until(self, deadline: float) -> bool:
        """Sleep on the stop event until *deadline*; True if a stop was requested."""
        while True:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return self.stopping
            if self.wait(remaining):
                return True
