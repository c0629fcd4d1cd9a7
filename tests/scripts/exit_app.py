"""An application for the exit-path tests: ``python exit_app.py MODE OUTDIR``.

It prints READY once its supervisor runs; the critical service's teardown writes
OUTDIR/teardown. MODE picks how the application ends.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from bgservices import LifecycleEvent, PeriodicService, Service, Supervisor

# The application's logging: bgservices' events (DEBUG and up) on stdout, one per line.
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")

mode, out = sys.argv[1], Path(sys.argv[2])
# Where the operator's Ctrl-C cuts a stuck teardown short, the deadline is far away: only
# that Ctrl-C can end the process before it (with 130; the deadline's exit code is 70).
slow_modes = ("double-sigint", "ctrl-c-at-exit")


class Writer(Service):
    """Critical: its teardown must run on every graceful exit path."""

    def run(self) -> None:
        while not self.wait(30):
            pass

    def teardown(self) -> None:
        (out / "teardown").write_text("flushed")
        if mode in slow_modes:
            print("TEARDOWN", flush=True)
            while True:  # a teardown slow enough that the operator presses Ctrl-C again
                time.sleep(0.05)


class Monitor(PeriodicService):
    daemon_safe = True
    interval = 0.01

    def tick(self) -> None:
        pass


class Stubborn(Service):
    def run(self) -> None:
        while True:  # ignores stop requests entirely
            time.sleep(0.05)


def ready(event: LifecycleEvent) -> None:
    if event.event == "supervisor.started":
        print("READY", flush=True)


services: list[Service] = [Monitor(), Writer()]
if mode == "straggler":
    services.append(Stubborn())
sup = Supervisor(services, shutdown_timeout=60.0 if mode in slow_modes else 2.0)
sup.add_listener(ready)

if mode in ("run", "double-sigint"):
    sys.exit(sup.run())
if mode == "handlers":
    sup.install_signal_handlers()
    sup.start()
    while True:  # the application's own main loop
        time.sleep(0.05)

sup.start()
if mode == "exit3":
    sys.exit(3)
if mode == "raise":
    raise RuntimeError("unhandled in main")
# "return", "straggler", "ctrl-c-at-exit": the main thread simply finishes
