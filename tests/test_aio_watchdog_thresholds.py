"""The loop watchdog times each async service's steps against that service's own
``loop_block_threshold``; a service with None is not timed, even beside watched ones."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from bgservices import AsyncService, Supervisor, _loop

from ._process import until
from .conftest import Recorder


def test_each_service_is_watched_against_its_own_threshold(
    make_supervisor: Callable[..., Supervisor], recorder: Recorder
) -> None:
    others_done = asyncio.Event()  # bound to the supervisor's loop at its first use there
    blocked: list[str] = []

    class Blocks(AsyncService):
        """Holds the loop 0.3 s once; the default service waits for the other two first."""

        async def run(self) -> None:
            if self.loop_block_threshold == 0.1:
                await others_done.wait()
            time.sleep(0.3)  # holds the loop
            blocked.append(self.name)
            if len(blocked) == 2:
                others_done.set()
            await self.wait(30)

    unwatched = Blocks(name="unwatched", loop_block_threshold=None)
    lenient = Blocks(name="lenient", loop_block_threshold=5.0)
    default = Blocks(name="default")
    sup = make_supervisor(unwatched, lenient, default)
    sup.start()
    event = recorder.wait_for("service.loop_blocked", timeout=10)
    assert event["service"] == "default"
    assert default.status()["loop_blocked"] == 1
    # the watchdog reports a step while it still runs, in order: the two earlier blocks
    # would have been reported before this one
    assert unwatched.status()["loop_blocked"] == 0
    assert lenient.status()["loop_blocked"] == 0
    assert [e["service"] for e in recorder.matching("service.loop_blocked")] == ["default"]


def test_the_monitor_thread_ends_on_an_idle_loop_and_a_later_block_is_still_reported(
    make_supervisor: Callable[..., Supervisor],
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_loop, "_LINGER", 0.05)  # the test need not idle a whole second
    waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
    ready = threading.Event()

    class BlocksLater(AsyncService):
        loop_block_threshold = 0.1

        async def run(self) -> None:
            go = asyncio.Event()
            waiting.append((asyncio.get_running_loop(), go))
            ready.set()
            await go.wait()  # no step runs until the test sets it
            time.sleep(0.3)  # holds the loop
            await self.wait(30)

    service = BlocksLater(name="later")
    sup = make_supervisor(service)
    sup.start()
    assert ready.wait(5)
    assert until(lambda: not _monitors(), timeout=5), "the monitor outlived an idle loop"
    loop, go = waiting[0]
    loop.call_soon_threadsafe(go.set)
    event = recorder.wait_for("service.loop_blocked", timeout=10)
    assert event["service"] == "later"
    assert service.status()["loop_blocked"] == 1


def _monitors() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bgservices:loop:watchdog"]
