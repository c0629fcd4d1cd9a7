"""Stop latency: 200 idle periodic services (interval 60 s) vs the stop-flag + sleep(1) loop
and APScheduler 3 with 200 interval jobs, ``shutdown(wait=True)``; and what the lifecycle logs
cost: start and stop of 200 services with nothing listening, with every per-service event
rendered (DEBUG), beside 200 bare threads started and stopped the plainest way (the floor).

The supervisor's services sleep on their stop event, so a stop wakes them at once; the
common hand-written pattern checks a flag between ``time.sleep(1)`` calls, so each thread
notices the stop up to a second late.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator

from bgservices import PeriodicService, Supervisor

from ._common import Result, standalone
from ._peers import apscheduler_version, start_apscheduler


class Idle(PeriodicService):
    interval = 60.0
    initial_delay = 60.0

    def tick(self) -> None:
        pass


def bgservices_stop(n: int) -> float:
    sup = Supervisor([Idle(name=f"idle{i}") for i in range(n)])
    sup.start()
    sup.wait_running(30)
    began = time.perf_counter()
    report = sup.stop()
    elapsed = time.perf_counter() - began
    assert report.clean
    return elapsed


def start_stop(n: int) -> tuple[float, float]:
    """(start, stop) seconds for *n* idle services: start() until every setup ran, stop()."""
    sup = Supervisor([Idle(name=f"idle{i}") for i in range(n)])
    began = time.perf_counter()
    sup.start()
    started = time.perf_counter()
    report = sup.stop()
    stopped = time.perf_counter()
    assert report.clean
    return started - began, stopped - started


def bare_threads(n: int) -> tuple[float, float]:
    """(start, stop) seconds for *n* plain threads, each waiting on an Event of its own (each
    one stoppable alone, as a service is): ``Thread.start``, then ``set`` and ``join``."""
    events = [threading.Event() for _ in range(n)]
    threads = [threading.Thread(target=event.wait) for event in events]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    for event in events:
        event.set()
    for thread in threads:
        thread.join()
    return started - began, time.perf_counter() - started


@contextlib.contextmanager
def every_event_rendered() -> Iterator[None]:
    """DEBUG on the bgservices loggers, each record formatted and written to /dev/null."""
    logger = logging.getLogger("bgservices")
    with open(os.devnull, "w") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        level, logger.level = logger.level, logging.DEBUG
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)


def sleep_loop_stop(n: int) -> float:
    flag = threading.Event()

    def loop() -> None:
        while not flag.is_set():
            time.sleep(1)

    threads = [threading.Thread(target=loop) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # let every loop settle into its sleep, as in a running application
    began = time.perf_counter()
    flag.set()
    for t in threads:
        t.join()
    return time.perf_counter() - began


def apscheduler_stop(n: int) -> float:
    scheduler = start_apscheduler(n, 60.0, lambda: None)
    began = time.perf_counter()
    scheduler.shutdown(wait=True)
    return time.perf_counter() - began


def run(quick: bool = False) -> list[Result]:
    n = 200
    repeats = 2 if quick else 5  # a stop takes milliseconds: the best of several runs
    ours = min(bgservices_stop(n) for _ in range(repeats))
    loop = sleep_loop_stop(n)
    aps = min(apscheduler_stop(n) for _ in range(repeats))
    best = lambda runs: tuple(min(r[i] for r in runs) for i in (0, 1))  # noqa: E731
    floor = best([bare_threads(n) for _ in range(repeats + 2)])
    silent = best([start_stop(n) for _ in range(repeats + 2)])
    with every_event_rendered():
        rendered = best([start_stop(n) for _ in range(repeats + 2)])
    return [
        Result(
            name=f"stop {n} idle services, lifecycle logs at INFO (the default: disabled)",
            unit="ms",
            ours=silent[1] * 1000,
            peers={
                "bare threads, an Event each: set all, join all (the floor)": floor[1] * 1000,
                "every per-service event rendered (DEBUG)": rendered[1] * 1000,
            },
            ratio=floor[1] / silent[1],
            target="within 1.3x of the floor (ratio = floor / ours: >= 0.77)",
            note="per-service start/stop events are DEBUG; one INFO summary per start and stop",
        ),
        Result(
            name=f"start {n} idle services, lifecycle logs at INFO (the default: disabled)",
            unit="ms",
            ours=silent[0] * 1000,
            peers={
                "bare threads: Thread.start (the floor)": floor[0] * 1000,
                "every per-service event rendered (DEBUG)": rendered[0] * 1000,
            },
            ratio=floor[0] / silent[0],
            target="reported (start waits for each setup() in turn)",
        ),
        Result(
            name=f"stop latency, {n} idle periodic services",
            unit="ms",
            ours=ours * 1000,
            peers={
                "sleep(1) loop": loop * 1000,
                f"APScheduler {apscheduler_version()}": aps * 1000,
            },
            ratio=loop / ours,
            target="< 100 ms; >= 10x faster than the sleep loop (ratio vs the sleep loop)",
            note="APScheduler wins: it has one scheduler thread to wake, ours wakes and joins "
            "200 threads (at once, unless requires orders them)",
        ),
    ]


if __name__ == "__main__":
    standalone(run, __doc__)
