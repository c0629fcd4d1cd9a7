"""``PeriodicService``: call ``tick()`` every ``interval`` seconds, on time, without drift."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any, Literal

from .errors import DoNotRestart
from .health import Verdict
from .options import option
from .service import Service, iso_time

__all__ = ["TICK_BUCKETS", "PeriodicService", "Schedule"]

_TELL_EVERY = 0.1  # seconds: how often a fast ticker with its own health view is judged

#: Upper bounds (seconds) of the tick-duration histogram's buckets; +Inf is implied.
TICK_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


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

    Health: each successful tick is a heartbeat; ``degraded_after_errors`` and
    ``failing_after_errors`` failing ticks in a row make it degraded, then failing; a tick
    running past ``tick_timeout`` is reported with its stack and keeps the service failing
    until it returns. A Python thread cannot be killed, so an overrunning tick is reported,
    never interrupted: make the work itself time out (socket timeouts, say).
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

    tick_timeout: float | None = option(
        default=None,
        gt=0,
        help="A tick running longer is reported with its stack, and the service is "
        "failing until it returns (it cannot be interrupted).",
    )
    degraded_after_errors: int = option(
        default=1, ge=1, help="Failing ticks in a row that make the service degraded."
    )
    failing_after_errors: int = option(
        default=3, ge=1, help="Failing ticks in a row that make the service failing."
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
        self._tick_began: float | None = None  # monotonic start of the tick running now
        self._succeeded_at: float | None = None  # wall time of the last successful tick
        self._lateness: float | None = None  # how late the last tick began, in seconds
        #: Ticks per duration bucket (``TICK_BUCKETS``, then +Inf) and their summed seconds.
        self._duration_counts = [0] * (len(TICK_BUCKETS) + 1)
        self._duration_sum = 0.0
        self._told_at = -math.inf  # when the owner was last told about a tick (monotonic)
        self._errors_before = 0  # consecutive errors when the running tick began
        super()._new_run()

    def run(self) -> None:
        self._new_schedule()
        while not self._wait_until(self._due()):
            begun = self._tick_begins()
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
        chance = self._clock.random  # a test's clock may fix the draws
        schedule = self._schedule = Schedule(
            self.schedule,
            self.interval,
            self._clock.monotonic() + self.initial_delay,
            self.jitter,
            chance.uniform if chance is not None else None,
        )
        self._next_at = schedule.first()
        if self.tick_timeout is not None:
            self._changed()  # the watchdog learns the first tick's earliest deadline

    def _due(self) -> float:
        """When the next tick is due."""
        assert self._next_at is not None
        return self._next_at

    def _tick_begins(self) -> float:
        """Note a tick's start (its lateness, the deadline the watchdog watches); its time."""
        begun = self._clock.monotonic()
        expected = self._progress_deadline()  # the earliest deadline the watchdog knows of
        if self._next_at is not None:
            self._lateness = max(0.0, begun - self._next_at)
        self._tick_began = begun
        self._errors_before = self.consecutive_errors
        if expected is not None and begun >= expected:
            self._changed()  # so late the watchdog may have judged that deadline already
        return begun

    def _tick_failed(self, exc: Exception) -> None:
        """A tick raised: counted and logged; re-raised (to end the run) past the limit."""
        if isinstance(exc, DoNotRestart):
            raise exc
        self._record_error(exc)  # first: whoever sees the count sees the error it counts
        self.errors += 1
        self.consecutive_errors += 1
        self._emit("service.tick_failed", "error", exc=exc, consecutive=self.consecutive_errors)
        limit = self.max_consecutive_errors
        if limit is not None and self.consecutive_errors >= limit:
            raise exc

    def _tick_ended(self, begun: float) -> None:
        """Bookkeeping after every tick (a success is a heartbeat), and when the next is due."""
        now = self._clock.monotonic()
        duration = now - begun
        self._tick_began = None
        self.ticks += 1
        self.last_tick_at = self._clock.time()
        if self.consecutive_errors == 0:
            self._heartbeat_at, self._succeeded_at = now, self.last_tick_at
        self.last_tick_duration = round(duration, 6)
        self._duration_counts[bisect.bisect_left(TICK_BUCKETS, duration)] += 1
        self._duration_sum += duration
        if duration > self.interval:
            self.overruns += 1
        if self._schedule is not None:
            self._next_at = self._schedule.after(now)
        self._tell_owner(now)

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

    def _tell_owner(self, now: float) -> None:
        """Wake the watchdog (and readiness waiters) when this tick may have changed the
        health: the first tick, errors starting or ending, a tick deadline ending. A class
        with its own ``check_health`` or ``ready`` is judged after its ticks too, at most ten
        times a second, so that a fast ticker costs its supervisor nothing."""
        errors, errors_before = self.consecutive_errors, self._errors_before
        if (
            self.ticks == 1
            or (
                errors != errors_before
                and self._error_level(errors_before) != self._error_level(errors)
            )
            or self._overran()
            or self._stall_reported
            or (self._has_own_view() and now - self._told_at >= _TELL_EVERY)
        ):
            self._told_at = now
            self._changed()

    def _error_level(self, errors: int) -> int:
        return (
            (errors > 0)
            + (errors >= self.degraded_after_errors)
            + (errors >= self.failing_after_errors)
        )

    def _progress_health(self, now: float) -> list[tuple[Verdict, str, float | None]]:
        found: list[tuple[Verdict, str, float | None]] = []
        began, limit = self._tick_began, self.tick_timeout
        if began is not None and limit is not None and now - began >= limit:
            found.append(
                (
                    Verdict.FAILING,
                    f"tick running for {now - began:.1f}s (tick_timeout={limit:g}s)",
                    began,
                )
            )
        errors = self.consecutive_errors
        if errors >= self.failing_after_errors:
            found.append((Verdict.FAILING, f"{errors} failing ticks in a row", None))
        elif errors >= self.degraded_after_errors:
            found.append((Verdict.DEGRADED, f"{errors} failing tick(s) in a row", None))
        return found

    def _progress_deadline(self) -> float | None:
        """When the running tick overruns; between ticks, the earliest the next one could.

        Deadlines only move later (a tick begins once it is due), so the watchdog, waking at
        the one it last saw, is never late, and no tick has to wake it when it begins.
        """
        limit = self.tick_timeout
        if limit is None:
            return None
        began = self._tick_began if self._tick_began is not None else self._next_at
        return None if began is None else began + limit

    def _overran(self) -> bool:
        """The tick that just ended ran past ``tick_timeout`` (its verdict is to be lifted)."""
        limit = self.tick_timeout
        return limit is not None and (self.last_tick_duration or 0.0) > limit
