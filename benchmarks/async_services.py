"""1,000 idle ``AsyncPeriodicService``s vs APScheduler 3's ``AsyncIOScheduler`` with 1,000
jobs; and tick accuracy of 100 async services at 10 ms on one loop.

Scale: each side runs in a fresh child process, its loop in one thread started from
synchronous code (``sup.start()``; for APScheduler a loop thread running the scheduler):
threads used, memory per service or job (RSS growth, and Python allocations by tracemalloc
in a separate run), start latency until every service is RUNNING (every job added and the
scheduler started), stop latency, and CPU used while idle. The services are daemon-safe, like
scheduler jobs (best effort): a stop asks them all at once.

Accuracy: 100 services tick every 10 ms on the one loop; lateness of each tick against its
own grid ``first + k * interval`` (mean and worst), and drift (the last ticks' lateness minus
the first ticks'), beside 100 thread ``PeriodicService``s and 100 APScheduler asyncio jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import psutil

from ._common import Result, print_table, quiet_logs
from ._peers import apscheduler_version

COUNT = 1000
TICKERS, INTERVAL = 100, 0.010


def _loop_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="aps-loop", daemon=True)
    thread.start()
    return loop, thread


def _in_loop(loop: asyncio.AbstractEventLoop, func: Any, *args: Any) -> Any:
    async def call() -> Any:
        return func(*args)

    return asyncio.run_coroutine_threadsafe(call(), loop).result(60)


def _child(kind: str, idle: float, traced: bool) -> dict[str, Any]:
    import tracemalloc

    import apscheduler.schedulers.asyncio  # noqa: F401  (both sides start with it imported)

    from bgservices import AsyncPeriodicService, Supervisor

    class Idle(AsyncPeriodicService):
        daemon_safe = True
        interval = 60.0
        initial_delay = 60.0

        async def tick(self) -> None:
            pass

    async def job() -> None:
        pass

    process = psutil.Process()
    threads_before = threading.active_count()
    idents_before = {t.ident for t in threading.enumerate()}
    if traced:
        tracemalloc.start()
    rss_before = process.memory_info().rss
    began = time.perf_counter()
    if kind == "ours":
        services = [Idle(name=f"idle{n}") for n in range(COUNT)]
        # a grace long enough that the stop is timed to its end, never cut short
        sup = Supervisor(services, stop_at_exit=False, daemon_grace=30.0)
        sup.start()
        assert sup.wait_running(60)
    else:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        loop, _ = _loop_thread()

        def start() -> Any:
            scheduler = AsyncIOScheduler(event_loop=loop)
            for n in range(COUNT):
                scheduler.add_job(job, "interval", seconds=60, id=f"job{n}")
            scheduler.start()
            return scheduler

        scheduler = _in_loop(loop, start)
    started = time.perf_counter() - began
    rss = process.memory_info().rss - rss_before
    traced_bytes = tracemalloc.get_traced_memory()[0] if traced else 0.0
    threads_at_start = threading.active_count() - threads_before
    cpu_before = sum(process.cpu_times()[:2])
    time.sleep(idle)  # idle: nothing is due for a minute
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    names = sorted(t.name for t in threading.enumerate() if t.ident not in idents_before)
    threads = len(names)
    began = time.perf_counter()
    if kind == "ours":
        report = sup.stop()
        assert report.clean and not report.abandoned, report
    else:
        _in_loop(loop, scheduler.shutdown, False)
    stopped = time.perf_counter() - began
    return {
        "start_ms": started * 1000,
        "stop_ms": stopped * 1000,
        "threads": threads,
        "threads_at_start": threads_at_start,
        "rss_kib_per_service": rss / 1024 / COUNT,
        "traced_kib_per_service": traced_bytes / 1024 / COUNT,
        "idle_cpu_s": cpu,
        "thread_names": names,
    }


def _measure(kind: str, idle: float, traced: bool = False) -> dict[str, Any]:
    args = [sys.executable, "-m", "benchmarks.async_services", "--child", kind, str(idle)]
    done = subprocess.run(
        [*args, "traced" if traced else "plain"],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    figures: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return figures


# -- tick accuracy ----------------------------------------------------------------------------


def _lateness(stamps: list[list[float]]) -> tuple[float, float, float]:
    """(mean, worst, drift) lateness in ms, each tick against the slot it was due in.

    Slots follow the fixed-rate rule (``first + k * interval``; slots that passed while a
    tick was late are skipped, not fired in a burst), so a skipped slot is not counted as
    lateness of every later tick. Drift: the last ticks' mean lateness minus the first's.
    """
    late: list[float] = []
    drifts: list[float] = []
    for series in stamps:
        first, slot, grid = series[0], 0, [0.0]
        for previous, now in itertools.pairwise(series):
            slot += 1
            if first + slot * INTERVAL < previous:
                slot = math.ceil((previous - first) / INTERVAL)
            grid.append(now - (first + slot * INTERVAL))
        late += grid
        drifts.append(statistics.fmean(grid[-5:]) - statistics.fmean(grid[:5]))
    return statistics.fmean(late) * 1000, max(late) * 1000, statistics.fmean(drifts) * 1000


def _ticks_ours(ticks: int, *, asynchronous: bool) -> list[list[float]]:
    """Tick times of TICKERS services, async ones on one loop or thread ones, until each
    has ticked *ticks* times."""
    from bgservices import AsyncPeriodicService, PeriodicService, Service, Supervisor

    stamps: list[list[float]] = [[] for _ in range(TICKERS)]
    done = threading.Semaphore(0)

    def stamp(service: Service) -> None:
        series = stamps[int(service.name[1:])]
        series.append(time.monotonic())
        if len(series) == ticks:
            done.release()

    class AsyncStamp(AsyncPeriodicService):
        interval = INTERVAL

        async def tick(self) -> None:
            stamp(self)

    class ThreadStamp(PeriodicService):
        interval = INTERVAL

        def tick(self) -> None:
            stamp(self)

    kind = AsyncStamp if asynchronous else ThreadStamp
    sup = Supervisor([kind(name=f"s{n}") for n in range(TICKERS)], stop_at_exit=False)
    sup.start()
    for _ in range(TICKERS):
        assert done.acquire(timeout=ticks * INTERVAL * 5 + 10)
    sup.stop()
    return [series[:ticks] for series in stamps]


def _ticks_apscheduler(ticks: int) -> list[list[float]]:
    import logging

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    # shutdown(wait=False) cancels the jobs still running: that is no error here
    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)

    stamps: list[list[float]] = [[] for _ in range(TICKERS)]
    done = threading.Semaphore(0)

    async def job(n: int) -> None:
        series = stamps[n]
        series.append(time.monotonic())
        if len(series) == ticks:
            done.release()

    loop, _ = _loop_thread()

    def start() -> Any:
        scheduler = AsyncIOScheduler(
            event_loop=loop,
            job_defaults={"coalesce": True, "misfire_grace_time": 30, "max_instances": 1},
        )
        for n in range(TICKERS):
            scheduler.add_job(job, "interval", args=[n], seconds=INTERVAL, id=f"job{n}")
        scheduler.start()
        return scheduler

    scheduler = _in_loop(loop, start)
    for _ in range(TICKERS):
        assert done.acquire(timeout=ticks * INTERVAL * 5 + 10)
    _in_loop(loop, scheduler.shutdown, False)
    loop.call_soon_threadsafe(loop.stop)
    return [series[:ticks] for series in stamps]


#: What each thread of a supervisor with only async services is for.
_THREADS = {
    "bgservices:loop": "the event loop all the async services run on",
    "bgservices:loop:watchdog": "its blocked-loop monitor (a blocked loop cannot see "
    "itself), while steps run and for 1 s after",
    "bgservices:watchdog": "the supervisor's health watchdog, while a change or a deadline "
    "is pending, and for 1 s after",
}


def _thread_note(figures: dict[str, Any]) -> str:
    names = figures["thread_names"]
    at_start = f"{figures['threads_at_start']} right after start(), while the monitors work"
    return "; ".join([*(f"{n}: {_THREADS.get(n, 'not expected')}" for n in names), at_start])


def run(quick: bool = False) -> list[Result]:
    idle = 2.5 if quick else 5.0  # longer than the watchdogs outlive their last work (1 s)
    ours, aps = _measure("ours", idle), _measure("apscheduler", idle)
    ours_traced, aps_traced = _measure("ours", 0, True), _measure("apscheduler", 0, True)
    ticks = 50 if quick else 300
    async_late = _lateness(_ticks_ours(ticks, asynchronous=True))
    thread_late = _lateness(_ticks_ours(ticks, asynchronous=False))
    aps_late = _lateness(_ticks_apscheduler(ticks))
    peer = f"APScheduler {apscheduler_version()} AsyncIOScheduler"

    def result(key: str, name: str, unit: str, target: str, note: str = "") -> Result:
        ratio = aps[key] / ours[key] if ours[key] else None
        return Result(name, unit, ours[key], {peer: aps[key]}, ratio, target, note)

    return [
        result(
            "threads", f"threads used by {COUNT} idle async services", "threads",
            "one loop thread", _thread_note(ours),
        ),
        result("rss_kib_per_service", f"RSS per idle async service ({COUNT})", "KiB",
               "<= 1.5x an APScheduler job"),
        Result(
            f"Python memory per idle async service ({COUNT}, tracemalloc)", "KiB",
            ours_traced["traced_kib_per_service"],
            {peer: aps_traced["traced_kib_per_service"]},
            aps_traced["traced_kib_per_service"] / ours_traced["traced_kib_per_service"],
            "<= 1.5x an APScheduler job",
        ),
        result("start_ms", f"start {COUNT} async services (all RUNNING)", "ms", "reported"),
        result("stop_ms", f"stop {COUNT} async services", "ms", "< 20 ms"),
        result("idle_cpu_s", f"idle CPU, {COUNT} async services for {idle:g} s", "CPU s", "~0"),
        Result(
            f"tick lateness, {TICKERS} async services at 10 ms on one loop, {ticks} ticks each",
            "ms", async_late[0],
            {f"{TICKERS} PeriodicService threads": thread_late[0], peer: aps_late[0]},
            target="as good as the thread version",
            note=f"worst: ours {async_late[1]:.2f} ms, threads {thread_late[1]:.2f} ms, "
            f"APScheduler {aps_late[1]:.2f} ms",
        ),
        Result(
            f"tick drift, {TICKERS} async services at 10 ms, first vs last ticks",
            "ms", async_late[2],
            {f"{TICKERS} PeriodicService threads": thread_late[2], peer: aps_late[2]},
            target="no drift (lateness does not grow)",
        ),
    ]  # fmt: skip


def _breakdown() -> None:
    """What an idle async service's memory is made of: Python allocations per service by
    the line that made them (tracemalloc), and the sizes of its larger parts."""
    import tracemalloc

    from bgservices import AsyncPeriodicService, Supervisor

    class Idle(AsyncPeriodicService):
        daemon_safe = True
        interval = 60.0
        initial_delay = 60.0

        async def tick(self) -> None:
            pass

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    services = [Idle(name=f"idle{n}") for n in range(COUNT)]
    sup = Supervisor(services, stop_at_exit=False)
    sup.start()
    assert sup.wait_running(60)
    time.sleep(0.5)
    after = tracemalloc.take_snapshot()
    diffs = after.compare_to(before, "lineno")
    print(f"Python memory per idle async service: {sum(d.size_diff for d in diffs) / COUNT:.0f} B")
    for diff in diffs[:15]:
        frame = diff.traceback[0]
        where = f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}"
        print(f"{diff.size_diff / COUNT:8.0f} B {diff.count_diff / COUNT:5.1f} objects  {where}")
    service = services[0]
    chain, coro = 0, service._task.get_coro() if service._task else None
    coro = getattr(coro, "inner", coro)
    while coro is not None and hasattr(coro, "cr_frame"):
        chain += 1
        coro = coro.cr_await
    print(f"instance __dict__: {len(vars(service))} attributes, {sys.getsizeof(vars(service))} B;"
          f" coroutines awaiting each other: {chain}")  # fmt: skip
    sup.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "IDLE_SECONDS", "TRACED"))
    parser.add_argument(
        "--breakdown", action="store_true", help="what an idle async service's memory is made of"
    )
    args = parser.parse_args()
    quiet_logs()
    if args.breakdown:
        _breakdown()
    elif args.child:
        kind, idle, traced = args.child
        print(json.dumps(_child(kind, float(idle), traced == "traced")))
    else:
        print_table(run(args.quick))
