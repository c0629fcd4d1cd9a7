"""Stop latency: 200 idle periodic services (interval 60 s) vs the stop-flag + sleep(1) loop
and APScheduler 3 with 200 interval jobs, ``shutdown(wait=True)``; and what the lifecycle logs
cost: start and stop of 200 services with nothing listening, with every per-service event
rendered (DEBUG), beside 200 bare threads started and stopped the plainest way (the floor).
Each stop begins once every thread waits (idle, not still on its way in); the three kinds
alternate, 15 times (4 with ``--quick``), and each figure is the median of its runs (the
best of them swings with the odd lucky run of the floor).

The supervisor's services sleep on their stop event, so a stop wakes them at once (32 at a
time: each once the one woken 32 before it has ended); the common hand-written pattern
checks a flag between ``time.sleep(1)`` calls, so each thread notices the stop up to a
second late.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import statistics
import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

from bgservices import PeriodicService, Supervisor

from ._common import Result, standalone, wait_idle
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


class StartStop(NamedTuple):
    start: float  # seconds
    stop: float  # seconds
    switches: float  # voluntary context switches per thread stopped


def _switches() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def start_stop(n: int) -> StartStop:
    """*n* idle services: start() until every setup ran; stop() once every service waits for
    its next tick (idle, as the floor's threads are)."""
    sup = Supervisor([Idle(name=f"idle{i}") for i in range(n)])
    began = time.perf_counter()
    sup.start()
    started = time.perf_counter()
    wait_idle([service._cond for service in sup])
    switches, stopping = _switches(), time.perf_counter()
    report = sup.stop()
    stopped, switches = time.perf_counter(), _switches() - switches
    assert report.clean
    return StartStop(started - began, stopped - stopping, switches / n)


def bare_threads(n: int) -> StartStop:
    """*n* plain threads, each waiting on an Event of its own (each one stoppable alone, as a
    service is): ``Thread.start``; once all wait, ``set`` and ``join``."""
    events = [threading.Event() for _ in range(n)]
    threads = [threading.Thread(target=event.wait) for event in events]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    wait_idle([event._cond for event in events])  # type: ignore[attr-defined]
    switches, stopping = _switches(), time.perf_counter()
    for event in events:
        event.set()
    for thread in threads:
        thread.join()
    stopped, switches = time.perf_counter(), _switches() - switches
    return StartStop(started - began, stopped - stopping, switches / n)


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
    runs: dict[str, list[StartStop]] = {"floor": [], "silent": [], "rendered": []}
    for _ in range(4 if quick else 15):  # interleaved, so that load on the machine hits all alike
        runs["floor"].append(bare_threads(n))
        runs["silent"].append(start_stop(n))
        with every_event_rendered():
            runs["rendered"].append(start_stop(n))
    floor, silent, rendered = (
        StartStop(*(statistics.median(field) for field in zip(*kind, strict=True)))
        for kind in runs.values()
    )
    return [
        Result(
            name=f"stop {n} idle services, lifecycle logs at INFO (the default: disabled)",
            unit="ms",
            ours=silent.stop * 1000,
            peers={
                "bare threads, an Event each: set all, join all (the floor)": floor.stop * 1000,
                "every per-service event rendered (DEBUG)": rendered.stop * 1000,
            },
            ratio=floor.stop / silent.stop,
            target="within 1.3x of the floor (ratio = floor / ours: >= 0.77)",
            note="per-service start/stop events are DEBUG; one INFO summary per start and stop",
        ),
        Result(
            name=f"voluntary context switches per service stopped ({n})",
            unit="switches",
            ours=silent.switches,
            peers={"bare threads (the floor)": floor.switches},
            ratio=floor.switches / silent.switches,
            target="reported (as the bare threads); unlike times, they barely move under load",
        ),
        Result(
            name=f"start {n} idle services, lifecycle logs at INFO (the default: disabled)",
            unit="ms",
            ours=silent.start * 1000,
            peers={
                "bare threads: Thread.start (the floor)": floor.start * 1000,
                "every per-service event rendered (DEBUG)": rendered.start * 1000,
            },
            ratio=floor.start / silent.start,
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
            "200 threads (32 at a time, unless requires orders them)",
        ),
    ]


if __name__ == "__main__":
    standalone(run, __doc__)
