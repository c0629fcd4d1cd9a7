"""A caller's loop closed under its async services without ``astop()``: a stop notices it at
once, from any thread, and ends them there."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from bgservices import AsyncService, ServiceState, StopReport, Supervisor


class Waits(AsyncService):
    async def run(self) -> None:
        while not await self.wait(30):
            pass


def _start_and_close_loop(sup: Supervisor) -> None:
    """``astart()`` on a loop of this thread, which is then closed without ``astop()``."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(sup.astart())
    finally:
        loop.close()


def test_a_stop_from_another_thread_notices_the_closed_loop_at_once(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    service = Waits()
    sup = make_supervisor(service, shutdown_timeout=30.0, daemon_grace=0.0)
    _start_and_close_loop(sup)
    reports: list[StopReport] = []
    began = time.monotonic()
    stopper = threading.Thread(target=lambda: reports.append(sup.stop()))
    stopper.start()
    stopper.join(40)
    elapsed = time.monotonic() - began
    assert reports and reports[0].clean, reports
    assert elapsed < 15  # not the whole 30 s deadline
    assert service.state is ServiceState.STOPPED


def test_a_stop_from_the_thread_whose_loop_closed_ends_the_service(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    service = Waits()
    sup = make_supervisor(service, shutdown_timeout=0.2, daemon_grace=0.0)
    _start_and_close_loop(sup)
    report = sup.stop()
    assert service.state is ServiceState.STOPPED  # not left "stopping"
    assert report.clean, report
