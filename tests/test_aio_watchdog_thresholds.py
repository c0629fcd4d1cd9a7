"""The loop watchdog times each async service's steps against that service's own
``loop_block_threshold``; a service with None is not timed, even beside watched ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bgservices import AsyncService, Supervisor

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
