"""200 idle periodic services (interval 60 s) vs APScheduler 3 with 200 interval jobs.

Each side runs in a fresh child process, so memory and thread counts are its own: time to
start until everything runs, threads used, RSS growth per 100 services or jobs, and CPU used
while idle. bgservices uses one thread per service by design: it is what lets each one
block in I/O, be stopped on its own, and run as daemon or non-daemon as it needs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time

import psutil

from ._common import Result, print_table, quiet_logs
from ._peers import apscheduler_version, start_apscheduler

COUNT = 200


def _child(kind: str, idle: float) -> dict[str, float]:
    from bgservices import PeriodicService, Supervisor  # imported before measuring

    class Idle(PeriodicService):
        interval = 60.0
        initial_delay = 60.0

        def tick(self) -> None:
            pass

    import apscheduler.schedulers.background  # noqa: F401  (so that both sides start equal)

    process = psutil.Process()
    rss_before = process.memory_info().rss
    threads_before = threading.active_count()
    began = time.perf_counter()
    if kind == "ours":
        sup = Supervisor([Idle(name=f"idle{n}") for n in range(COUNT)], stop_at_exit=False)
        sup.start()
        assert sup.wait_running(30)
    else:
        scheduler = start_apscheduler(COUNT, 60.0, lambda: None)
    started = time.perf_counter() - began
    cpu_before = sum(process.cpu_times()[:2])
    time.sleep(idle)  # idle: nothing is due for a minute
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    figures = {
        "start_ms": started * 1000,
        "threads": threading.active_count() - threads_before,
        "rss_kib_per_100": (process.memory_info().rss - rss_before) / 1024 / COUNT * 100,
        "idle_cpu_s": cpu,
    }
    if kind == "ours":
        sup.stop()
    else:
        scheduler.shutdown()
    return figures


def _measure(kind: str, idle: float) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--child", kind, str(idle)],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def run(quick: bool = False) -> list[Result]:
    idle = 2.0 if quick else 10.0
    ours, aps = _measure("ours", idle), _measure("apscheduler", idle)
    peer = f"APScheduler {apscheduler_version()}"

    def result(key: str, name: str, unit: str, target: str, note: str = "") -> Result:
        ratio = aps[key] / ours[key] if ours[key] else None
        return Result(name, unit, ours[key], {peer: aps[key]}, ratio, target, note)

    return [
        result("start_ms", f"start latency, {COUNT} services to all RUNNING", "ms", "reported"),
        result(
            "threads", f"threads used for {COUNT} periodic services", "threads", "reported",
            "one per service by design; APScheduler shares a pool, created as jobs first run",
        ),
        result("rss_kib_per_100", "memory per 100 idle services", "KiB", "reported"),
        result(
            "idle_cpu_s", f"idle CPU, {COUNT} services for {idle:g} s", "CPU s",
            "<= APScheduler's, ~0",
        ),
    ]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "IDLE_SECONDS"))
    args = parser.parse_args()
    quiet_logs()
    if args.child:
        print(json.dumps(_child(args.child[0], float(args.child[1]))))
    else:
        print_table(run(args.quick))
