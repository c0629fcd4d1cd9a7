"""Soak: 200 services for a while, some crashing at random and restarting.

Every second it samples threads, RSS and CPU. It fails (exit 1) if threads or RSS keep
growing, if a log record accepted during the run is missing from the file, or if the final
stop misses its deadline. ``python -m benchmarks.soak [--duration S]`` (60 by default).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bgservices import Backoff, PeriodicService, Supervisor
from bgservices.services import LogCollector

from ._common import quiet_logs

SERVICES = 200
CRASHY_FRACTION = 0.1
SHUTDOWN_TIMEOUT = 10.0

_records = 0
_records_lock = threading.Lock()
_log = logging.getLogger("soak")


class Worker(PeriodicService):
    """Logs a record each tick; a crashy one fails at random and gets restarted."""

    crash_probability: float = 0.0

    def tick(self) -> None:
        global _records
        with _records_lock:
            _records += 1
            _log.info("tick %s %d", self.name, self.ticks)
        if random.random() < self.crash_probability:
            raise RuntimeError("random crash")


def soak(duration: float) -> int:
    quiet_logs()
    workdir = Path(tempfile.mkdtemp(prefix="bgservices-soak-"))
    _log.setLevel(logging.INFO)
    _log.propagate = False
    workers = [
        Worker(
            name=f"w{n}",
            interval=random.uniform(0.05, 0.5),
            crash_probability=0.2 if n < SERVICES * CRASHY_FRACTION else 0.0,
            max_consecutive_errors=1,
            max_restarts=1_000_000,
            restart_window=1.0,
        )
        for n in range(SERVICES - 1)
    ]
    collector = LogCollector(
        name="logs", path=str(workdir / "soak.log"), loggers=["soak"], max_bytes=0
    )
    sup = Supervisor(
        [collector, *workers],
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        backoff=Backoff(initial=0.01, maximum=0.2, reset_after=1.0),
    )
    process = psutil.Process()
    process.cpu_percent(None)
    sup.start()
    samples = []
    began = time.monotonic()
    print(f"{'t (s)':>6} {'threads':>8} {'rss (MiB)':>10} {'cpu %':>6} {'restarts':>9}")
    while time.monotonic() - began < duration:
        time.sleep(1.0)
        restarts = sum(w.restarts for w in workers)
        row = (
            time.monotonic() - began,
            threading.active_count(),
            process.memory_info().rss / 2**20,
            process.cpu_percent(None),
            restarts,
        )
        samples.append(row)
        print(f"{row[0]:6.1f} {row[1]:8d} {row[2]:10.1f} {row[3]:6.1f} {row[4]:9d}", flush=True)

    report = sup.stop()
    with _records_lock:
        accepted = _records
    written = len((workdir / "soak.log").read_text().splitlines())

    failures = []
    quarter = max(1, len(samples) // 4)
    early_rss = max(s[2] for s in samples[:quarter])
    late_rss = max(s[2] for s in samples[-quarter:])
    if max(s[1] for s in samples) > SERVICES + 5:
        failures.append(f"threads grew to {max(s[1] for s in samples)}")
    if late_rss > early_rss * 1.25 + 20:
        failures.append(f"RSS grew from {early_rss:.1f} to {late_rss:.1f} MiB")
    if written != accepted:
        failures.append(f"{accepted - written} of {accepted} records lost")
    if not report.clean or report.elapsed > SHUTDOWN_TIMEOUT:
        failures.append(f"stop: {report}")
    print(
        f"\n{SERVICES} services, {duration:g} s: {samples[-1][4]} restarts, {accepted} records "
        f"accepted, {written} written, stop took {report.elapsed * 1000:.0f} ms"
    )
    for failure in failures:
        print(f"FAIL: {failure}")
    print("soak: PASS" if not failures else "soak: FAIL")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=60.0)
    sys.exit(soak(parser.parse_args().duration))
