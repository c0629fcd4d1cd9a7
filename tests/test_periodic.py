from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgservices import PeriodicService, ServiceState
from bgservices.periodic import Schedule
from bgservices.testing import FakeClock, capture_events, supervised


def test_fixed_rate_stays_on_the_grid_whatever_the_tick_takes() -> None:
    s = Schedule("fixed_rate", 1.0, start=100.0)
    due = s.first()
    for _ in range(1000):
        due = s.after(due + 0.3)  # every tick takes 0.3 s
    assert due == pytest.approx(100.0 + 1000)  # no drift: 1000 intervals after the start
    assert s.skipped == 0


def test_fixed_rate_skips_missed_slots_instead_of_bursting() -> None:
    s = Schedule("fixed_rate", 1.0, start=0.0)
    assert s.first() == 0.0
    assert s.after(3.5) == 4.0  # the tick overran slots 1, 2, 3: next is slot 4, not 1
    assert s.skipped == 3  # slots 1, 2 and 3 passed while the tick ran
    assert s.after(4.1) == 5.0


def test_fixed_delay_counts_from_the_end_of_the_tick() -> None:
    s = Schedule("fixed_delay", 2.0, start=10.0)
    assert s.first() == 10.0
    assert s.after(10.5) == 12.5
    assert s.after(13.0) == 15.0


@given(st.lists(st.floats(min_value=0, max_value=10), min_size=1, max_size=300))
def test_jitter_never_accumulates(draws: list[float]) -> None:
    """Lateness against the nominal grid stays within [0, jitter] after any number of ticks."""
    values = iter(draws * 2)
    s = Schedule("fixed_rate", 60.0, start=0.0, jitter=10.0, rng=lambda a, b: next(values))
    due = s.first()
    for _ in range(len(draws) - 1):
        due = s.after(due + 0.001)
        lateness = due - s.index * 60.0
        assert 0.0 <= lateness <= 10.0


class Counter(PeriodicService):
    interval = 0.01

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.active = 0
        self.max_active = 0
        self.seen = threading.Event()
        self.fail_ticks: set[int] = set()
        self.first_tick_at: float | None = None

    def tick(self) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        if self.first_tick_at is None:
            self.first_tick_at = time.monotonic()
        try:
            if self.ticks in self.fail_ticks:
                raise ValueError(f"tick {self.ticks} fails")
            if self.ticks >= 5:
                self.seen.set()
            time.sleep(0.002)
        finally:
            self.active -= 1


def test_ticks_repeat_without_overlap(make_supervisor) -> None:
    svc = Counter()
    with make_supervisor(svc):
        assert svc.seen.wait(5)
    assert svc.max_active == 1
    status = svc.status()
    json.dumps(status)
    assert status["ticks"] >= 6 and status["errors"] == 0
    assert set(status) >= {"last_tick_at", "last_tick_duration", "next_tick_in", "overruns"}


def test_failing_ticks_are_counted_and_ticking_goes_on(make_supervisor, recorder) -> None:
    svc = Counter()
    svc.fail_ticks = {1, 2}
    with make_supervisor(svc):
        assert svc.seen.wait(5)
        assert svc.state is ServiceState.RUNNING
    assert svc.errors == 2 and svc.consecutive_errors == 0
    assert svc.last_error is not None and svc.last_error["type"] == "ValueError"
    assert "tick 2 fails" in svc.last_error["traceback"]
    assert recorder.names("counter").count("service.tick_failed") == 2


def test_max_consecutive_errors_fails_the_service(make_supervisor, recorder) -> None:
    svc = Counter(max_consecutive_errors=3, restart="never")
    svc.fail_ticks = set(range(100))
    with make_supervisor(svc):
        assert svc.wait_for_state(ServiceState.FAILED, timeout=5)
    assert svc.errors == 3


def test_initial_delay_postpones_the_first_tick(make_supervisor) -> None:
    svc = Counter(initial_delay=0.2)
    began = time.monotonic()
    with make_supervisor(svc):
        assert svc.seen.wait(5)
    assert svc.first_tick_at is not None and svc.first_tick_at - began >= 0.2


def test_stop_interrupts_a_long_interval_at_once(make_supervisor) -> None:
    svc = Counter(interval=3600, initial_delay=3600)
    sup = make_supervisor(svc)
    sup.start()
    assert sup.wait_running(5)
    report = sup.stop(timeout=5)
    assert report.clean and svc.ticks == 0


def test_a_long_tick_is_reported_on_the_fake_clock_at_exactly_its_timeout() -> None:
    class Long(PeriodicService):
        interval = 10.0
        initial_delay = 10.0

        def tick(self) -> None:
            self.wait(100)  # a tick that takes 100 s on the clock

    clock = FakeClock(settle_timeout=0.3)
    service = Long(name="long", tick_timeout=1)
    with capture_events() as events, supervised(service, clock=clock) as sup:
        clock.wait_for_sleepers(2)  # the service's wait, and the watchdog's for the deadline
        clock.advance(10)  # the tick begins at 10
        assert not events.matching("service.tick_timeout")
        clock.advance(1)  # exactly tick_timeout into the tick
        events.wait_for("service.tick_timeout", service="long", timeout=5)
        assert sup.health()["services"]["long"]["health"] == "failing"
