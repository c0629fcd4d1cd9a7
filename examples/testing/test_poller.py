"""A user's tests for a service, with bgservices' pytest plugin: no conftest.py needed.

Run from the repository's root folder: python -m pytest examples/testing
"""

from __future__ import annotations

import pytest

from bgservices import PeriodicService
from bgservices.testing import run_ticks


class Poller(PeriodicService):
    """Polls a source every 30 seconds; gives up on a source that keeps failing."""

    interval = 30.0
    max_consecutive_errors = 3
    source = staticmethod(lambda: "ok")

    def init_state(self) -> None:
        super().init_state()
        self.seen: list[str] = []

    def tick(self) -> None:
        self.seen.append(self.source())


def test_a_tick_polls_once() -> None:
    status = run_ticks(Poller(), 2)  # setup, two ticks, teardown, in this thread
    assert status["ticks"] == 2 and status["errors"] == 0


def test_a_failing_source_raises_out_of_run_ticks() -> None:
    class Broken(Poller):
        source = staticmethod(lambda: 1 / 0)

    with pytest.raises(ZeroDivisionError):
        run_ticks(Broken(), 1)


@pytest.mark.bgservices_hygiene  # fail if a bgservices thread or a signal handler is left behind
def test_it_ticks_on_time(bgservices_supervisor, bgservices_clock) -> None:
    poller = Poller()
    bgservices_supervisor(poller, clock=bgservices_clock).start()
    bgservices_clock.wait_for_sleepers(1)  # ticked at 0; now waiting for time to pass
    bgservices_clock.advance(90)  # 30, 60, 90: those ticks have run when this returns
    assert poller.seen == ["ok"] * 4
    # no stop() here: the fixture stops every supervisor it made


def test_it_fails_after_three_bad_polls(
    bgservices_supervisor, bgservices_clock, bgservices_events
) -> None:
    class Flaky(Poller):
        source = staticmethod(lambda: 1 / 0)

    bgservices_supervisor(Flaky(restart="never"), clock=bgservices_clock).start()
    bgservices_clock.wait_for_sleepers(1)
    bgservices_clock.advance(60)
    failed = bgservices_events.wait_for("service.failed", service="flaky")
    assert failed["error"] == "ZeroDivisionError('division by zero')"
    assert bgservices_events.names("flaky").count("service.tick_failed") == 3
