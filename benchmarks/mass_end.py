"""Many services ending on their own at once, while the supervisor runs, beside the same
services ended by ``stop()``.

1,000 services (thread ones, then async ones) whose ``run()`` returns as soon as a shared
cue is set (``restart="never"``): the time from the cue until every one is STOPPED. Each end
is reported to the supervisor (its health watchdog, whoever waits for a change, ``run()``
returning once all have ended), where a stop tells it nothing per service. So the stop of
the same services, ``stop()`` from the same start, is the figure to be near.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

from bgservices import AsyncService, Service, ServiceState, Supervisor

from ._common import Result, standalone


def _ended_by_cue(count: int, asynchronous: bool, by_stop: bool) -> float:
    """Seconds from the cue (or ``stop()``) until all *count* services are STOPPED."""
    cue = threading.Event()
    acue: list[asyncio.Event] = []  # made on the loop by the first run()

    class Threaded(Service):
        restart = "never"

        def run(self) -> None:
            if by_stop:
                self.wait(60)
            else:
                cue.wait(60)

    class Async(AsyncService):
        restart = "never"
        daemon_safe = True

        async def run(self) -> None:
            if by_stop:
                await self.wait(60)
                return
            if not acue:
                acue.append(asyncio.Event())
            await acue[0].wait()

    kind: type[Service] = Async if asynchronous else Threaded
    services = [kind(name=f"s{n}") for n in range(count)]
    sup = Supervisor(services, stop_at_exit=False, daemon_grace=60.0)
    sup.start()
    assert sup.wait_running(60)
    began = time.perf_counter()
    if by_stop:
        sup.stop()
    elif asynchronous:
        place = services[0]._place
        assert place is not None
        place.loop.call_soon_threadsafe(acue[0].set)
    else:
        cue.set()
    for service in services:
        assert service.wait_for_state(ServiceState.STOPPED, timeout=60)
    elapsed = time.perf_counter() - began
    sup.stop()
    return elapsed


def run(quick: bool = False) -> list[Result]:
    count = 500 if quick else 1000
    repeats = 1 if quick else 3
    results = []
    for asynchronous, what in ((False, "thread"), (True, "async")):
        ended = statistics.median(
            _ended_by_cue(count, asynchronous, by_stop=False) for _ in range(repeats)
        )
        stopped = statistics.median(
            _ended_by_cue(count, asynchronous, by_stop=True) for _ in range(repeats)
        )
        results.append(
            Result(
                name=f"{count:,} {what} services ending on their own at once, while running",
                unit="ms",
                ours=ended * 1000,
                peers={"the same services ended by stop()": stopped * 1000},
                ratio=stopped / ended,
                target="near a stop (it was 1 s for 1,000 before: every end scanned them all)",
            )
        )
    return results


if __name__ == "__main__":
    standalone(run, __doc__)
