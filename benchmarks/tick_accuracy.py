"""Tick accuracy: ticks at 20 ms with a 5 ms body, and jitter over 1,000 ticks at 60 s.

Accuracy runs for real: ``PeriodicService`` (fixed rate), the naive ``work(); sleep(interval)``
loop, and an APScheduler 3 ``IntervalTrigger`` job. Period error is the mean period minus
the interval; drift is how late the last tick is against ``first + (n-1) * interval``.

Jitter runs on a simulated clock (1,000 ticks of 60 s would take 17 hours): our schedule and
APScheduler 3's ``IntervalTrigger(jitter=10)`` are asked for each next fire time in turn, and
lateness is measured against the nominal grid ``start + k * 60``.
"""

from __future__ import annotations

import itertools
import random
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta

from bgservices import PeriodicService, Supervisor
from bgservices.periodic import Schedule

from ._common import Result, standalone
from ._peers import apscheduler_version, start_apscheduler

INTERVAL, BODY = 0.020, 0.005


def _errors(times: list[float]) -> tuple[float, float]:
    periods = [b - a for a, b in itertools.pairwise(times)]
    mean_error = statistics.fmean(periods) - INTERVAL
    drift = times[-1] - (times[0] + (len(times) - 1) * INTERVAL)
    return mean_error * 1000, drift * 1000


def ours(ticks: int) -> list[float]:
    times: list[float] = []
    done = threading.Event()

    class Worker(PeriodicService):
        interval = INTERVAL

        def tick(self) -> None:
            times.append(time.monotonic())
            if len(times) == ticks:
                done.set()
            time.sleep(BODY)

    with Supervisor([Worker()], stop_at_exit=False):
        assert done.wait(ticks * INTERVAL * 3 + 5)
    return times[:ticks]


def naive(ticks: int) -> list[float]:
    times = []
    for _ in range(ticks):
        times.append(time.monotonic())
        time.sleep(BODY)
        time.sleep(INTERVAL)
    return times


def apscheduler_ticks(ticks: int) -> list[float]:
    times: list[float] = []
    done = threading.Event()

    def job() -> None:
        times.append(time.monotonic())
        if len(times) == ticks:
            done.set()
        time.sleep(BODY)

    scheduler = start_apscheduler(1, INTERVAL, job)
    assert done.wait(ticks * INTERVAL * 3 + 5)
    scheduler.shutdown()
    return times[:ticks]


def jitter_lateness(ticks: int, seed: int = 7) -> tuple[float, float]:
    """Worst lateness against the 60 s grid over *ticks*: (ours, APScheduler's), seconds."""
    from apscheduler.triggers.interval import IntervalTrigger

    rng = random.Random(seed)
    schedule = Schedule("fixed_rate", 60.0, start=0.0, jitter=10.0, rng=rng.uniform)
    due = schedule.first()
    worst_ours = due
    for _ in range(ticks - 1):
        due = schedule.after(due + 0.001)
        worst_ours = max(worst_ours, abs(due - schedule.index * 60.0))

    random.seed(seed)  # APScheduler draws from the module-level generator
    start = datetime(2026, 1, 1, tzinfo=UTC)
    trigger = IntervalTrigger(seconds=60, jitter=10, start_date=start, timezone=UTC)
    previous, now, worst_theirs = None, start, 0.0
    for k in range(ticks):
        fire = trigger.get_next_fire_time(previous, now)
        nominal = start + timedelta(seconds=60 * k)
        worst_theirs = max(worst_theirs, abs((fire - nominal).total_seconds()))
        previous, now = fire, fire + timedelta(milliseconds=1)
    return worst_ours, worst_theirs


def run(quick: bool = False) -> list[Result]:
    ticks = 50 if quick else 200
    ours_err, ours_drift = _errors(ours(ticks))
    naive_err, naive_drift = _errors(naive(ticks))
    aps_err, aps_drift = _errors(apscheduler_ticks(ticks))
    late_ours, late_aps = jitter_lateness(1000)
    peer = f"APScheduler {apscheduler_version()}"
    return [
        Result(
            name=f"tick period error, {ticks} ticks at 20 ms, 5 ms body",
            unit="ms",
            ours=ours_err,
            peers={"naive work(); sleep()": naive_err, peer: aps_err},
            target="mean period error < 1 ms (naive: ~5 ms per tick)",
        ),
        Result(
            name=f"cumulative drift after {ticks} ticks",
            unit="ms",
            ours=ours_drift,
            peers={"naive work(); sleep()": naive_drift, peer: aps_drift},
            target="no cumulative drift",
        ),
        Result(
            name="worst lateness, 1,000 ticks at 60 s with 10 s jitter (simulated clock)",
            unit="s",
            ours=late_ours,
            peers={peer: late_aps},
            ratio=late_aps / late_ours,
            target="bounded by the jitter (10 s)",
            note="APScheduler 3 adds each tick's jitter to the previous, already jittered, time",
        ),
    ]


if __name__ == "__main__":
    standalone(run, __doc__)
