"""Daemon-safe vs critical, with bgservices: the main thread just returns.

The critical service's teardown runs (the supervisor stops it before the interpreter joins
non-daemon threads); the daemon-safe service is busy in a long tick when the program ends,
so after a short grace it is abandoned and its ``finally`` never runs, exactly as CPython
does to any daemon thread.

Run it: ``python examples/daemon_vs_critical.py``
"""

from __future__ import annotations

import time

from bgservices import PeriodicService, Service, Supervisor


class Flusher(Service):
    """Critical (the default): it holds data that must reach disk."""

    def run(self) -> None:
        while not self.wait(3600):
            pass

    def teardown(self) -> None:
        print("critical  flusher: teardown ran, buffered data written")


class Sampler(PeriodicService):
    """Daemon-safe: losing its last sample costs nothing."""

    daemon_safe = True
    interval = 0.1

    def tick(self) -> None:
        try:
            time.sleep(10)  # a long, uninterruptible piece of work
        finally:
            print("daemon    sampler: finally ran")  # never printed


sup = Supervisor([Flusher(), Sampler()], shutdown_timeout=2, daemon_grace=0.2)
sup.start()
time.sleep(0.3)  # let the sampler start its long tick
print("main: returning now")
# No stop() call: the exit hook stops the supervisor when the main thread finishes.
