"""The fake clock drives async services as it drives thread ones; run_ticks runs async ticks.
A behaviour both kinds share is one test, parametrized over a thread and an async service."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from bgservices import Backoff, PeriodicService, Service, ServiceState, Supervisor
from bgservices._clock import REAL_CLOCK
from bgservices.aio import AsyncPeriodicService, AsyncService
from bgservices.testing import FakeClock, capture_events, run_ticks, supervised

from .test_testing import Crasher, Ticker


class AsyncTicker(AsyncPeriodicService):
    """Records the clock's time at each tick."""

    daemon_safe = True

    def init_state(self) -> None:
        super().init_state()
        self.at: list[float] = []

    async def tick(self) -> None:
        self.at.append(self.clock.monotonic())


class AsyncCrasher(AsyncService):
    async def run(self) -> None:
        raise ValueError("boom")


# -- ticks, jitter, waits -----------------------------------------------------------------


@pytest.mark.parametrize("kind", [Ticker, AsyncTicker], ids=["thread", "async"])
def test_advance_runs_exactly_the_ticks_that_are_due(kind: type[PeriodicService]) -> None:
    clock = FakeClock()
    slow, fast = kind(name="slow", interval=10), kind(name="fast", interval=3)
    with supervised(slow, fast, clock=clock) as sup:
        clock.wait_for_sleepers(2)
        assert slow.at == [0.0] and fast.at == [0.0]  # type: ignore[attr-defined]
        assert clock.next_deadline == 3.0
        clock.advance(9.5)
        assert slow.at == [0.0] and fast.at == [0.0, 3.0, 6.0, 9.0]
        clock.advance(0.5)
        assert slow.at == [0.0, 10.0] and fast.at[-1] == 9.0
        assert sup.status()["fast"]["next_tick_in"] == 2.0
        assert clock.sleepers == 2 and clock.next_deadline == 12.0
        clock.advance(3600)  # an hour, at once: every slot on time, none twice
        assert len(slow.at) == 1 + 361 and len(fast.at) == 1 + 1203
        assert fast.at == [3.0 * k for k in range(1204)]
    assert clock.monotonic() == 3610.0 and clock.sleepers == 0
    assert clock.time() == 1_700_000_000.0 + 3610.0


@pytest.mark.parametrize("kind", [Ticker, AsyncTicker], ids=["thread", "async"])
def test_jitter_is_drawn_from_the_clocks_seeded_random(kind: type[PeriodicService]) -> None:
    clock = FakeClock(seed=7)
    svc = kind(interval=10, jitter=2, schedule="fixed_delay")
    with supervised(svc, clock=clock):
        clock.wait_for_sleepers(1)
        clock.advance(40)
    expected, draws, at = [], random.Random(7), 0.0
    at += draws.uniform(0, 2)  # the first tick's jitter
    while at <= 40:
        expected.append(at)
        at += 10 + draws.uniform(0, 2)
    assert svc.at == pytest.approx(expected, abs=1e-12)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", [Ticker, AsyncTicker], ids=["thread", "async"])
def test_a_stop_wakes_a_wait_without_moving_time(kind: type[PeriodicService]) -> None:
    clock = FakeClock()
    svc = kind(interval=3600)
    with supervised(svc, clock=clock):
        clock.wait_for_sleepers(1)
        assert svc.at == [0.0]  # type: ignore[attr-defined]
    assert svc.state is ServiceState.STOPPED and clock.monotonic() == 0.0
    assert clock.sleepers == 0  # the stopped wait's timer is off the clock


def test_waits_an_async_service_makes_inside_one_advance_run_in_order() -> None:
    class Steps(AsyncService):
        def init_state(self) -> None:
            super().init_state()
            self.at: list[float] = []

        async def run(self) -> None:
            for seconds in (1, 2, 3, 4):
                if await self.wait(seconds):
                    return
                self.at.append(self.clock.monotonic())
            await self.wait(3600)

    clock = FakeClock()
    svc = Steps()
    with supervised(svc, clock=clock):
        clock.wait_for_sleepers(1)
        clock.advance(6)  # the waits made at 1 and 3 fall due inside it too
        assert svc.at == [1.0, 3.0, 6.0]
        clock.advance(3.9)
        assert svc.at == [1.0, 3.0, 6.0]
        clock.advance(0.1)
        assert svc.at == [1.0, 3.0, 6.0, 10.0]


def test_thread_and_async_services_share_one_clock_in_deadline_order() -> None:
    log: list[tuple[float, str]] = []  # (when, who), in the order the ticks ran

    class Threaded(PeriodicService):
        def tick(self) -> None:
            log.append((self.clock.monotonic(), "thread"))

    class Async(AsyncPeriodicService):
        async def tick(self) -> None:
            log.append((self.clock.monotonic(), "async"))

    clock = FakeClock()
    with supervised(Threaded(interval=4), Async(interval=6), clock=clock):
        clock.wait_for_sleepers(2)
        clock.advance(24)
    times = [at for at, _ in log]
    assert times == sorted(times)  # each tick ran when its time came, whichever kind
    assert [at for at, who in log if who == "thread"] == [0, 4, 8, 12, 16, 20, 24]
    assert [at for at, who in log if who == "async"] == [0, 6, 12, 18, 24]


def test_advance_fails_when_a_woken_task_awaits_something_else() -> None:
    class Blocking(AsyncPeriodicService):
        async def setup(self) -> None:
            self.release = asyncio.Event()

        async def tick(self) -> None:
            if self.ticks:  # the second tick awaits something the clock does not drive
                await self.release.wait()

        def on_stop_requested(self) -> None:
            self.release.set()

    clock = FakeClock(settle_timeout=0.1)
    with supervised(Blocking(interval=1), clock=clock):
        clock.wait_for_sleepers(1)
        failure = r"\['task bgservices:blocking'\] did not come back to wait on the clock"
        with pytest.raises(TimeoutError, match=failure):
            clock.advance(1)


# -- backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [Crasher, AsyncCrasher], ids=["thread", "async"])
def test_backoff_delays_follow_the_fake_clock(kind: type[Service]) -> None:
    clock = FakeClock(uniform=lambda low, high: low)  # always the shortest: half the ceiling
    backoff = Backoff(initial=4, factor=3, maximum=20)
    crasher = kind(max_restarts=4)
    with capture_events() as events, Supervisor([crasher], clock=clock, backoff=backoff):
        for attempt in (1, 2, 3):
            delay = events.wait_for("service.backoff", attempt=attempt)["delay"]
            clock.wait_for_sleepers(1)
            assert clock.next_deadline == pytest.approx(clock.monotonic() + delay)
            clock.advance(delay - 0.5)
            assert crasher.state is ServiceState.BACKOFF and crasher.restarts == attempt - 1
            clock.advance(0.5)  # the delay is over: restarted (and crashed) on return
            assert crasher.restarts == attempt
        events.wait_for("service.backoff", attempt=4)
    delays = [e["delay"] for e in events.matching("service.backoff")]
    assert delays == [2.0, 6.0, 10.0, 10.0]  # 4, 12, 36 -> 20 (capped), halved
    assert clock.monotonic() == 18.0


# -- stall detection ----------------------------------------------------------------------


def test_heartbeats_of_an_async_service_are_on_the_fake_clock() -> None:
    class Beating(AsyncService):
        async def run(self) -> None:
            while not await self.wait(1):
                self.heartbeat()

    clock = FakeClock()
    svc = Beating(stall_after=5)
    with supervised(svc, clock=clock) as sup:
        clock.wait_for_sleepers(1)
        clock.advance(30)  # a heartbeat each fake second: never stalled
        health = sup.health()["services"]["beating"]
        assert health["health"] == "ok" and health["heartbeat_age"] == 0.0


# -- on the test's own loop -----------------------------------------------------------------


def test_an_async_test_advances_from_another_thread_never_its_loop() -> None:
    clock = FakeClock()
    svc = AsyncTicker(interval=10)

    async def main() -> None:
        async with Supervisor([svc], clock=clock):  # the services run on this loop
            await asyncio.to_thread(clock.wait_for_sleepers, 1)
            with pytest.raises(RuntimeError, match=r"asyncio\.to_thread\(clock\.advance"):
                clock.advance(10)
            assert clock.monotonic() == 0.0 and svc.at == [0.0]  # refused before moving
            await asyncio.to_thread(clock.advance, 25)
            assert svc.at == [0.0, 10.0, 20.0]

    asyncio.run(asyncio.wait_for(main(), 10))


def test_the_real_clock_schedules_on_the_loop_itself() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        got: list[int] = []
        timer = REAL_CLOCK.call_later(loop, 0.0, got.append, 1)
        assert isinstance(timer, asyncio.TimerHandle)
        REAL_CLOCK.call_later(loop, 0.0, got.append, 2).cancel()
        await asyncio.sleep(0.01)
        return got

    assert asyncio.run(main()) == [1]


# -- run_ticks ------------------------------------------------------------------------------


class Job(PeriodicService):
    """Records the thread each tick ran in, between its setup and teardown."""

    def init_state(self) -> None:
        super().init_state()
        self.calls: list[str] = []

    def setup(self) -> None:
        self.calls.append("setup")

    def tick(self) -> None:
        self.calls.append(threading.current_thread().name)

    def teardown(self) -> None:
        self.calls.append("teardown")


class AsyncJob(AsyncPeriodicService):
    """``Job`` with coroutine hooks, each awaited."""

    def init_state(self) -> None:
        super().init_state()
        self.calls: list[str] = []

    async def setup(self) -> None:
        self.calls.append("setup")

    async def tick(self) -> None:
        await asyncio.sleep(0)  # a real coroutine, awaited
        self.calls.append(threading.current_thread().name)

    async def teardown(self) -> None:
        self.calls.append("teardown")


@pytest.mark.parametrize("kind", [Job, AsyncJob], ids=["thread", "async"])
def test_run_ticks_runs_setup_ticks_and_teardown_in_this_thread(
    kind: type[PeriodicService],
) -> None:
    job = kind()
    status = run_ticks(job, 3)
    me = threading.current_thread().name
    assert job.calls == ["setup", me, me, me, "teardown"]  # type: ignore[attr-defined]
    assert status["ticks"] == 3 and status["errors"] == 0


def test_run_ticks_raises_an_async_ticks_error_after_teardown_and_reads_the_clock() -> None:
    class Failing(AsyncTicker):
        async def tick(self) -> None:
            await super().tick()
            if len(self.at) == 3:
                raise ValueError("tick 3")

    clock = FakeClock()
    svc = Failing(name="ticker", interval=5)
    with capture_events() as events, pytest.raises(ValueError, match="tick 3"):
        run_ticks(svc, 5, clock=clock)
    assert svc.at == [0.0, 5.0, 10.0] and svc.ticks == 3 and svc.errors == 1
    assert events.names("ticker") == ["service.tick_failed"]


class Beating(Service):
    """Heartbeats every second while ``beating``."""

    def init_state(self) -> None:
        super().init_state()
        self.beating = True

    def run(self) -> None:
        while not self.wait(1):
            if self.beating:
                self.heartbeat()


class AsyncBeating(AsyncService):
    """``Beating`` on the loop."""

    def init_state(self) -> None:
        super().init_state()
        self.beating = True

    async def run(self) -> None:
        while not await self.wait(1):
            if self.beating:
                self.heartbeat()


@pytest.mark.parametrize("kind", [Beating, AsyncBeating], ids=["thread", "async"])
def test_a_stall_is_reported_on_the_fake_clock(kind: type[Service]) -> None:
    clock = FakeClock(settle_timeout=0.3)
    svc = kind(name="beating", stall_after=5)
    with capture_events() as events, supervised(svc, clock=clock) as sup:
        clock.wait_for_sleepers(2)  # the service's wait, and the watchdog's for the stall
        clock.advance(10)
        assert sup.health()["services"]["beating"]["health"] == "ok"
        svc.beating = False  # type: ignore[attr-defined]  # its last heartbeat is at 10
        clock.advance(4.5)
        assert not events.matching("service.stalled")
        clock.advance(0.5)  # exactly stall_after since the last heartbeat
        stalled = events.wait_for("service.stalled", service="beating", timeout=1)
        assert stalled["stall_after"] == 5
        assert sup.health()["services"]["beating"]["health"] == "failing"
