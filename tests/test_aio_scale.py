"""Async services stopped many at once: the stops a wave asks in a burst reach each service
with its hooks and in wave order, a thread service of the same wave is not kept waiting,
and ``astop()`` never joins the loop that awaits it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import ClassVar

import pytest

from bgservices import AsyncPeriodicService, AsyncService, Service, ServiceState, Supervisor, _loop


class Hooked(AsyncPeriodicService):
    """Idle between ticks; records its stop hook and teardown in a shared list."""

    interval = 60.0
    initial_delay = 60.0
    log_to: ClassVar[list[str]] = []

    async def tick(self) -> None:
        pass

    def on_stop_requested(self) -> None:
        self.log_to.append(f"hook:{self.name}")

    async def teardown(self) -> None:
        await asyncio.sleep(0)
        self.log_to.append(f"teardown:{self.name}")


class AsyncHooked(Hooked):
    async def on_stop_requested(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.log_to.append(f"hook:{self.name}")


def test_a_burst_of_stops_runs_every_hook_and_teardown_in_wave_order(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    log: list[str] = []
    idle = [(Hooked if n % 2 else AsyncHooked)(name=f"s{n}") for n in range(200)]
    # a chain: "base" is required by "top", so it stops only once "top" has torn down
    base = Hooked(name="base")
    top = AsyncHooked(name="top", requires=["base"])
    for service in [*idle, base, top]:
        service.log_to = log
    sup = make_supervisor(base, *idle, top)
    sup.start()
    assert sup.wait_running(10)
    report = sup.stop()
    assert report.clean
    assert all(s.state is ServiceState.STOPPED for s in sup)
    for service in [*idle, base, top]:
        assert log.index(f"hook:{service.name}") < log.index(f"teardown:{service.name}")
    assert log.index("teardown:top") < log.index("hook:base")


def test_an_async_stop_in_a_burst_does_not_wait_for_a_thread_service_of_its_wave(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    """The thread service stops only once the async one heard of the stop: were the async
    stop held back until the stop had waited for the thread service, it would straggle."""
    heard = threading.Event()

    class Listener(AsyncService):
        async def run(self) -> None:
            while not await self.wait(30):
                pass
            heard.set()

    class Waiter(Service):
        def run(self) -> None:
            self.wait(30)
            heard.wait(10)

    # newest first: the stop asks (and then waits for) the thread service first
    sup = make_supervisor(Listener(), Waiter(), shutdown_timeout=10)
    sup.start()
    assert sup.wait_running(10)
    report = sup.stop()
    assert report.clean and not report.stragglers
    assert heard.is_set()


def test_astop_returns_without_joining_the_loop_it_is_awaited_from() -> None:
    """The services ran on the caller's loop: ``stop()`` (in a worker thread) must not join
    that loop's thread, which awaits it, until the daemon grace runs out."""

    class Idle(AsyncService):
        daemon_safe = True

        async def run(self) -> None:
            while not await self.wait(30):
                pass

    service = Idle()
    sup = Supervisor([service], stop_at_exit=False, daemon_grace=8.0)

    async def main() -> None:
        await sup.astart()
        report = await asyncio.wait_for(sup.astop(), 4.0)  # well inside the 8 s grace
        assert report.clean

    asyncio.run(main())
    assert service.state is ServiceState.STOPPED


def test_batched_posts_wait_for_a_flush_and_never_hold_back_a_plain_post(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_loop, "_BURST", 60.0)  # the fallback drain never comes in this test
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop")
    thread.start()
    try:
        place = _loop.Place(loop, thread)
        ran: list[str] = []
        done = threading.Event()

        def round_trip() -> None:  # every callback posted before it has run
            reached = threading.Event()
            loop.call_soon_threadsafe(reached.set)
            assert reached.wait(5)

        place.post_batched(ran.append, "batched")
        round_trip()
        assert ran == []  # held for the rest of its burst
        place.flush()
        round_trip()
        assert ran == ["batched"]
        place.post_batched(ran.append, "second batch")
        place.post(lambda: (ran.append("plain"), done.set()))
        assert done.wait(5)  # not behind the batch's 60 s: it takes the batch along, in order
        assert ran == ["batched", "second batch", "plain"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
