"""An application for the async exit-path tests: ``python aio_exit_app.py MODE OUTDIR``.

Like exit_app.py, with the critical service an ``AsyncService`` on the supervisor's loop
thread: its ``teardown()`` (a coroutine that awaits) writes OUTDIR/teardown. It prints READY
once its supervisor runs; MODE picks how the application ends.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

from bgservices import AsyncPeriodicService, AsyncService, LifecycleEvent, Supervisor

# The application's logging: bgservices' events (DEBUG and up) on stdout, one per line.
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")

mode, out = sys.argv[1], Path(sys.argv[2])


class Writer(AsyncService):
    """Critical: its teardown must run on every graceful exit path."""

    async def run(self) -> None:
        while not await self.wait(30):
            pass

    async def teardown(self) -> None:
        await asyncio.sleep(0.01)  # a real await on the way out
        (out / "teardown").write_text("flushed")


class Monitor(AsyncPeriodicService):
    daemon_safe = True
    interval = 0.01

    async def tick(self) -> None:
        pass


class Deaf(AsyncService):
    """Daemon-safe, and swallows its cancellation: abandoned at exit, as a daemon thread is."""

    daemon_safe = True

    async def run(self) -> None:
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                print("DEAF CANCELLED", flush=True)


def ready(event: LifecycleEvent) -> None:
    if event.event == "supervisor.started":
        print("READY", flush=True)


services: list[AsyncService] = [Monitor(), Writer()]
if mode == "abandoned":
    services.append(Deaf())
sup = Supervisor(services, shutdown_timeout=2.0)
sup.add_listener(ready)

if mode == "run":
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
# "return", "abandoned": the main thread simply finishes
