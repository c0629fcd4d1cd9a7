"""Async services at the stop deadline: one cancellation for every stopping task of a loop,
one shared window, and only a task that survives it is a straggler."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from bgservices import AsyncService, Supervisor


class EndsOnCancel(AsyncService):
    """Ignores the stop request; ends at once when cancelled."""

    async def run(self) -> None:
        await asyncio.Event().wait()


def test_only_a_task_that_survives_the_deadline_cancellation_is_a_straggler(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    release = threading.Event()

    class Stubborn(AsyncService):
        async def run(self) -> None:
            while not release.is_set():
                with contextlib.suppress(asyncio.CancelledError):  # swallowed: it survives
                    await asyncio.sleep(0.01)

    # newest first: the stubborn one is reached first and spends the whole window
    services = [EndsOnCancel(name=f"quick{i}") for i in range(3)] + [Stubborn()]
    sup = make_supervisor(*services, shutdown_timeout=0.1, daemon_grace=0.0)
    sup.start()
    assert sup.wait_running(5)
    try:
        report = sup.stop()
    finally:
        release.set()
    assert report.stragglers == ("stubborn",)
    assert sorted(report.stopped) == ["quick0", "quick1", "quick2"]


def test_many_tasks_that_end_on_cancellation_leave_no_straggler(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    services = [EndsOnCancel(name=f"s{i}") for i in range(1000)]
    sup = make_supervisor(*services, shutdown_timeout=0.1, daemon_grace=0.0)
    sup.start()
    assert sup.wait_running(10)
    report = sup.stop()
    assert report.stragglers == ()
    assert report.clean, report
    assert len(report.stopped) == 1000
