"""Idle thread services at scale, beside bare threads started and stopped the plainest way.

The floor is ``Thread(target=event.wait).start()`` per thread, then ``event.set()`` and
``join()`` for each, one after the other: the plainest stop, with one thread awake at a time.
bgservices' stop is concurrent (``Supervisor.stop``: the services of a wave are asked 32 at a
time, each after the one asked 32 before it has ended, then each is joined), unlike the other
bare stop shown beside it, every event set first and then every thread joined. That one is a
little faster at 10 and 100 threads but slower from 1,000 up, where all the woken threads
contend for the GIL, so the one-by-one stop is the floor the ratio is taken against: what
CPython itself costs per thread here. Beside the start, bare threads that run 40 us of
Python before they wait, as a service's thread does (its setup, its move to RUNNING, its
schedule): whatever a new thread runs before it waits, its starter waits for the GIL until
then, one more context switch per thread. Bare threads that run 5 us first show that this
is a step, not a cost in proportion: so little is over before the starter wakes.
bgservices starts N idle ``PeriodicService``s (interval 60 s) with
``Supervisor.start()``, which returns once each one's setup() has ended, and stops them with
``stop()``; each stop, ours and the bare ones, begins once every thread waits (idle, not
still on its way in). Voluntary context switches per thread started are shown too: unlike
times, they barely move when the machine is loaded. Each figure comes from a fresh child
process, the median of several; the kinds alternate. Memory is RSS and virtual size grown
per thread, objects included, with and without ``thread_stack_size``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import resource
import statistics
import subprocess
import sys
import threading
import time

from ._common import Result, print_table, quiet_logs, wait_idle

SMALL_STACK = 256 * 1024
#: Python a service's thread runs from its start to its first wait (setup, the move to
#: RUNNING, its schedule): 40 to 55 us here, measured with ``time.thread_time``.
STARTUP_PYTHON = 40e-6
#: A few microseconds of Python before the wait: about as free as none (the starter finds the
#: GIL released when it wakes), where 40 us costs the starter one more context switch.
BRIEF_PYTHON = 5e-6


def _switches() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def _bare_threads(
    count: int, work: float = 0.0
) -> tuple[list[threading.Event], list[threading.Thread]]:
    """*count* started threads, each waiting on its event after *work* seconds of Python."""
    events = [threading.Event() for _ in range(count)]
    threads = []
    for event in events:
        target = event.wait if not work else functools.partial(_work_then_wait, work, event)
        thread = threading.Thread(target=target)
        thread.start()
        threads.append(thread)
    return events, threads


def _work_then_wait(seconds: float, event: threading.Event) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    event.wait()


def _child(kind: str, count: int) -> dict[str, float]:
    import psutil

    from bgservices import PeriodicService, Supervisor

    class Idle(PeriodicService):
        interval = 60.0
        initial_delay = 60.0

        def tick(self) -> None:
            pass

    process = psutil.Process()
    gc.collect()
    before = process.memory_info()
    extra: dict[str, float] = {}
    if kind in ("bare_python", "bare_python_brief"):
        work = STARTUP_PYTHON if kind == "bare_python" else BRIEF_PYTHON
        switches, began = _switches(), time.perf_counter()
        events, threads = _bare_threads(count, work)
        started, switches = time.perf_counter() - began, _switches() - switches
        after = process.memory_info()
        wait_idle([event._cond for event in events])  # type: ignore[attr-defined]
        stopped = 0.0
        for event, thread in zip(events, threads, strict=True):
            event.set()
            thread.join()
    elif kind == "bare":
        switches, began = _switches(), time.perf_counter()
        events, threads = _bare_threads(count)
        started, switches = time.perf_counter() - began, _switches() - switches
        after = process.memory_info()
        wait_idle([event._cond for event in events])  # type: ignore[attr-defined]
        began = time.perf_counter()
        for event, thread in zip(events[::-1], threads[::-1], strict=True):
            event.set()
            thread.join()
        stopped = time.perf_counter() - began
        events, threads = _bare_threads(count)
        wait_idle([event._cond for event in events])  # type: ignore[attr-defined]
        began = time.perf_counter()
        for event in events:
            event.set()
        for thread in threads:
            thread.join()
        extra["stop_all_ms"] = (time.perf_counter() - began) * 1000
    else:
        size = SMALL_STACK if kind == "ours_small_stack" else None
        services = [Idle(name=f"idle{n}") for n in range(count)]
        sup = Supervisor(services, stop_at_exit=False, thread_stack_size=size, shutdown_timeout=300)
        switches, began = _switches(), time.perf_counter()
        sup.start()
        started, switches = time.perf_counter() - began, _switches() - switches
        assert sup.wait_running(0)
        after = process.memory_info()
        wait_idle([service._cond for service in services])
        began = time.perf_counter()
        report = sup.stop()
        stopped = time.perf_counter() - began
        assert report.clean and not report.abandoned
    return {
        "start_ms": started * 1000,
        "stop_ms": stopped * 1000,
        "rss_kib": (after.rss - before.rss) / 1024 / count,
        "vms_kib": (after.vms - before.vms) / 1024 / count,
        "switches": switches / count,
        **extra,
    }


def _measure(kind: str, count: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.thread_scale", "--child", kind, str(count)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"{kind} x {count} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def _medians(kind: str, count: int, repeats: int) -> dict[str, float]:
    runs = [_measure(kind, count) for _ in range(repeats)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def run(quick: bool = False) -> list[Result]:
    # small sizes take milliseconds, where one hiccup of the machine is the whole figure:
    # more runs there (each a fresh process)
    sizes = {10: 3, 100: 3, 1000: 1} if quick else {10: 15, 100: 9, 1000: 3, 5000: 3}
    repeats = 1 if quick else 3
    results: list[Result] = []
    memory: dict[str, dict[str, float]] = {}
    for count, runs in sizes.items():
        figures: dict[str, list[dict[str, float]]] = {
            "ours": [], "bare": [], "bare_python": [], "bare_python_brief": []
        }  # fmt: skip
        for _ in range(runs):  # alternate, so that load on the machine hits both alike
            for kind in figures:
                figures[kind].append(_measure(kind, count))
        ours, bare, busy, brief = (
            {k: statistics.median(r[k] for r in runs) for k in runs[0]} for runs in figures.values()
        )
        peers = {
            "start": {
                f"bare, {BRIEF_PYTHON * 1e6:.0f} us of Python before the wait": brief["start_ms"],
                f"bare, {STARTUP_PYTHON * 1e6:.0f} us of Python before the wait": busy["start_ms"],
            },
            "stop": {"bare, all set then all joined": bare["stop_all_ms"]},
        }
        if count == 1000:
            memory = {"ours": ours, "bare": bare}
        for key, what in (("start_ms", "start"), ("stop_ms", "stop")):
            results.append(
                Result(
                    name=f"{what} {count:,} idle thread services",
                    unit="ms",
                    ours=ours[key],
                    peers={f"{count:,} bare threads (Thread + Event)": bare[key], **peers[what]},
                    ratio=bare[key] / ours[key],
                    target="within 1.5x of the bare threads (ratio >= 0.67)",
                )
            )
        results.append(
            Result(
                name=f"voluntary context switches per thread started ({count:,})",
                unit="switches",
                ours=ours["switches"],
                peers={
                    "bare threads": bare["switches"],
                    f"bare, {BRIEF_PYTHON * 1e6:.0f} us of Python first": brief["switches"],
                    f"bare, {STARTUP_PYTHON * 1e6:.0f} us of Python first": busy["switches"],
                },
                ratio=bare["switches"] / ours["switches"] if ours["switches"] else None,
                target="reported (close to the bare threads)",
            )
        )
    small = _medians("ours_small_stack", 1000, repeats)
    ours, bare = memory["ours"], memory["bare"]
    results += [
        Result(
            name="RSS per idle thread service (1,000)",
            unit="KiB",
            ours=ours["rss_kib"],
            peers={"bare thread + Event": bare["rss_kib"]},
            ratio=bare["rss_kib"] / ours["rss_kib"],
            target="<= 22 KiB",
        ),
        Result(
            name="virtual memory per idle thread service (1,000)",
            unit="KiB",
            ours=ours["vms_kib"],
            peers={
                f"with thread_stack_size={SMALL_STACK // 1024} KiB": small["vms_kib"],
                "bare thread + Event": bare["vms_kib"],
            },
            ratio=ours["vms_kib"] / small["vms_kib"],
            target="reported; ratio: default / small stacks",
            note="the default is the stack ulimit (8 MiB here), reserved, not resident",
        ),
    ]
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "COUNT"))
    args = parser.parse_args()
    quiet_logs()
    if args.child:
        print(json.dumps(_child(args.child[0], int(args.child[1]))))
    else:
        print_table(run(args.quick))
