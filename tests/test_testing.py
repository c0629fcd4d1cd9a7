"""bgservices.testing: captured events, supervised blocks, the fake clock, run_ticks, hygiene."""

from __future__ import annotations

import logging
import signal
import threading

import pytest

from bgservices import Backoff, DoNotRestart, PeriodicService, Service, ServiceState, Supervisor
from bgservices.testing import FakeClock, capture_events, hygiene, run_ticks, supervised


class Ticker(PeriodicService):
    """Records the clock's time at each tick."""

    daemon_safe = True

    def init_state(self) -> None:
        super().init_state()
        self.at: list[float] = []
        self.fail_at: set[int] = set()

    def tick(self) -> None:
        self.at.append(self.clock.monotonic())
        if len(self.at) in self.fail_at:
            raise ValueError(f"tick {len(self.at)}")


class Crasher(Service):
    def run(self) -> None:
        raise ValueError("boom")


class Waiter(Service):
    def run(self) -> None:
        while not self.wait(1.0):
            pass


# -- capture_events ---------------------------------------------------------------------


def test_capture_sees_every_supervisor_without_wiring_and_restores_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    tree, child = logging.getLogger("bgservices"), logging.getLogger("bgservices.supervisor")
    child.setLevel(logging.ERROR)  # an application's choice, kept after the capture
    try:
        before = (tree.level, tree.propagate, list(tree.handlers), child.level)
        with capture_events() as events:
            with Supervisor([Waiter()]) as sup:  # nobody added a listener
                assert sup.wait_running(5)
            assert tree.level < logging.DEBUG and not tree.propagate
            assert child.level < logging.DEBUG
        assert (tree.level, tree.propagate, list(tree.handlers), child.level) == before
    finally:
        child.setLevel(logging.NOTSET)
    assert events.names("waiter") == [
        "service.starting",
        "service.running",
        "service.stopping",
        "service.stopped",
    ]
    assert events.matching("supervisor.stopped")[0]["stragglers"] == []
    # the application's handlers got what they would have without the capture: no DEBUG
    assert not [r for r in caplog.records if r.name.startswith("bgservices")]


def test_a_crash_loop_reads_as_dicts_and_root_handlers_still_get_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(uniform=lambda low, high: high)
    with capture_events() as events:
        sup = Supervisor([Crasher(max_restarts=2)], clock=clock, backoff=Backoff(initial=1))
        with sup:
            clock.wait_for_sleepers(1)
            clock.advance(1)
            clock.advance(2)
            failed = events.wait_for("service.failed", service="crasher")
    assert events.names("crasher").count("service.crashed") == 3
    crash = events.matching("service.crashed")[0]
    assert crash["log_level"] == "error" and crash["hook"] == "run"
    assert crash["error"] == "ValueError('boom')" and isinstance(crash["exc_info"], ValueError)
    assert failed["reason"] == "over 2 restarts in 60s"
    # ERROR is at or above the root's level: the application's handler saw each crash
    seen = [r for r in caplog.records if getattr(r, "event", None) == "service.crashed"]
    assert len(seen) == 3


def test_captures_nest_and_a_level_set_meanwhile_is_respected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with capture_events() as outer, caplog.at_level(logging.DEBUG, "bgservices.service"):
        with capture_events() as inner, Supervisor([Waiter()]) as sup:  # DEBUG asked for, above
            assert sup.wait_running(5)
        assert "service.running" in inner.names() and "service.running" in outer.names()
    debug = [r for r in caplog.records if getattr(r, "event", None) == "service.running"]
    assert len(debug) == 1  # passed on once, though two captures were listening


def test_wait_for_names_what_it_saw_when_the_event_does_not_come() -> None:
    with capture_events() as events, pytest.raises(AssertionError, match=r"no event x.*seen: \["):
        events.wait_for("x", timeout=0.01)


# -- supervised -----------------------------------------------------------------------


def test_supervised_yields_a_running_supervisor_and_stops_it() -> None:
    svc = Waiter()
    with supervised(svc) as sup:
        assert sup.running and svc.state is ServiceState.RUNNING
    assert svc.state is ServiceState.STOPPED
    assert svc.thread is not None and not svc.thread.is_alive()


def test_supervised_fails_when_a_service_never_runs() -> None:
    class BadSetup(Service):
        def setup(self) -> None:
            raise OSError("no database")

    clock = FakeClock()  # the backoff waits on it, so it never comes back by itself
    failure = r"not running within 0.2s: \{'bad_setup': 'backoff'"
    with (
        pytest.raises(AssertionError, match=failure),
        supervised(BadSetup(), clock=clock, timeout=0.2),
    ):
        pass


def test_supervised_fails_the_test_on_a_straggler() -> None:
    release = threading.Event()

    class Stubborn(Service):
        def run(self) -> None:
            release.wait(10)  # ignores the stop

    svc = Stubborn()
    try:
        failure = r"did not stop cleanly: stragglers \['stubborn'\]"
        with pytest.raises(AssertionError, match=failure), supervised(svc, shutdown_timeout=0.05):
            pass
    finally:
        release.set()
        assert svc.thread is not None
        svc.thread.join(5)


def test_supervised_lets_the_blocks_own_error_through() -> None:
    with pytest.raises(KeyError, match="mine"), supervised(Waiter()):
        raise KeyError("mine")


# -- the fake clock -------------------------------------------------------------------


def test_chosen_draws_give_exact_jitter() -> None:
    clock = FakeClock(uniform=lambda low, high: high)  # always the longest
    svc = Ticker(interval=10, jitter=1)
    with supervised(svc, clock=clock):
        clock.wait_for_sleepers(1)
        clock.advance(31)
    assert svc.at == [1.0, 11.0, 21.0, 31.0]  # fixed rate: jitter never accumulates


def test_the_restart_window_is_counted_on_the_clock() -> None:
    clock = FakeClock(uniform=lambda low, high: high)
    crasher = Crasher(max_restarts=1, restart_window=100)
    backoff = Backoff(initial=60, factor=1, maximum=60, reset_after=1000)
    with capture_events() as events:
        sup = Supervisor([crasher], clock=clock, backoff=backoff)
        with sup:
            clock.wait_for_sleepers(1)
            clock.advance(60)  # restarted at 0; crashes at 60, inside the window: fails
            events.wait_for("service.failed")
    assert crasher.restarts == 1 and crasher.state is ServiceState.FAILED

    crasher = Crasher(max_restarts=1, restart_window=50)
    with capture_events() as events:
        sup = Supervisor([crasher], clock=clock, backoff=backoff)
        with sup:
            clock.wait_for_sleepers(1)
            clock.advance(60)  # 60 fake seconds later the first restart has left the window
            clock.wait_for_sleepers(1)
            assert crasher.state is ServiceState.BACKOFF and crasher.restarts == 1
    assert "service.failed" not in events.names()


def test_advance_fails_when_a_woken_thread_blocks_elsewhere() -> None:
    release = threading.Event()

    class Blocking(PeriodicService):
        def tick(self) -> None:
            if self.ticks:  # the second tick blocks on something the clock does not drive
                release.wait(10)

    clock = FakeClock(settle_timeout=0.1)
    with supervised(Blocking(interval=1), clock=clock):
        clock.wait_for_sleepers(1)
        with pytest.raises(TimeoutError, match=r"\['bgservices:blocking'\] did not come back"):
            clock.advance(1)
        release.set()


def test_a_wait_with_no_timeout_is_not_a_sleeper_but_settles_an_advance() -> None:
    class Parks(Service):
        """After a timed wait, parks on the clock with no timeout until stopped."""

        def init_state(self) -> None:
            super().init_state()
            self.parked = threading.Condition()
            self.woke_at: float | None = None

        def run(self) -> None:
            if self.wait(5):
                return
            self.woke_at = self.clock.monotonic()
            with self.parked:
                self.clock.wait_for(self.parked, lambda: self.stopping, None)

        def on_stop_requested(self) -> None:
            with self.parked:
                self.parked.notify_all()

    clock = FakeClock(settle_timeout=2)
    svc = Parks()
    with supervised(svc, clock=clock):
        clock.wait_for_sleepers(1)
        clock.advance(10)  # it is back on the clock, untimed: the advance need not wait more
        assert svc.woke_at == 5.0
        assert clock.sleepers == 0 and clock.next_deadline is None
        with pytest.raises(TimeoutError, match="0 of 1 waits"):
            clock.wait_for_sleepers(1, timeout=0.01)  # time alone would never move it on
    assert svc.state is ServiceState.STOPPED


def test_the_fake_clock_refuses_to_go_back() -> None:
    with pytest.raises(ValueError, match="seconds >= 0"):
        FakeClock().advance(-1)
    with pytest.raises(TimeoutError, match="0 of 1 waits"):
        FakeClock().wait_for_sleepers(1, timeout=0.01)


# -- run_ticks ------------------------------------------------------------------------


def test_run_ticks_raises_the_first_failing_tick_after_teardown() -> None:
    class Failing(Ticker):
        def init_state(self) -> None:
            super().init_state()
            self.fail_at = {2}

    svc = Failing(name="ticker")
    with capture_events() as events, pytest.raises(ValueError, match="tick 2"):
        run_ticks(svc, 5)
    assert svc.ticks == 2 and svc.errors == 1 and len(svc.at) == 2
    assert events.names("ticker") == ["service.tick_failed"]
    assert svc.max_consecutive_errors is None  # the option is as it was


def test_run_ticks_with_a_clock_and_do_not_restart() -> None:
    class Countdown(PeriodicService):
        def tick(self) -> None:
            if self.ticks == 2:
                raise DoNotRestart("done")

    clock = FakeClock()
    status = run_ticks(Countdown(interval=5), 10, clock=clock)
    assert status["ticks"] == 3 and clock.monotonic() == 10.0
    assert status["last_tick_at"] == "2023-11-14T22:13:30+00:00"  # the clock's wall time


# -- hygiene --------------------------------------------------------------------------


def test_hygiene_fails_on_a_leftover_thread() -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="bgservices:leak")
    failure = r"threads left running: \['bgservices:leak'\]"
    with pytest.raises(AssertionError, match=failure), hygiene(join_timeout=0.01):
        thread.start()
    release.set()
    thread.join(5)


def test_hygiene_fails_on_a_changed_signal_handler() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        failure = r"handlers left changed: \['SIGTERM'\]"
        with pytest.raises(AssertionError, match=failure), hygiene():
            signal.signal(signal.SIGTERM, lambda *_: None)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_events_carry_a_timestamp_and_wait_for_takes_a_predicate() -> None:
    svc = Ticker(interval=10)
    clock = FakeClock()
    with capture_events() as events, supervised(svc, clock=clock):
        clock.wait_for_sleepers(1)
        running = events.wait_for("service.running", where=lambda e: svc.ticks >= 1)
    stopped = events.matching("service.stopped")[0]
    assert running["timestamp"] <= stopped["timestamp"]
    with pytest.raises(AssertionError, match=r"no event service\.running"):
        events.wait_for("service.running", where=lambda e: False, timeout=0.01)
