from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import pytest

from bgservices import (
    Backoff,
    ConfigError,
    PeriodicService,
    Phase,
    Service,
    ServiceState,
    Supervisor,
    _exit,
)
from bgservices import supervisor as supervisor_module

from ._process import until

FAST = Backoff(initial=0.001, maximum=0.01)


class Idle(Service):
    """Waits for a stop; notes setup and teardown in a shared journal."""

    journal: list[str] = []  # noqa: RUF012 (replaced per test through the constructor)

    def setup(self) -> None:
        self.journal.append(f"setup {self.name}")

    def run(self) -> None:
        while not self.wait(30):
            pass

    def teardown(self) -> None:
        self.journal.append(f"teardown {self.name}")


class Background(Idle):
    daemon_safe = True


class Crashing(Service):
    def run(self) -> None:
        raise RuntimeError("crash")


class Straggler(Service):
    """Ignores stop requests until the test releases it."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.release = threading.Event()

    def run(self) -> None:
        while not self.release.wait(0.01):
            pass


def test_thread_kind_and_name_follow_daemon_safety(make_supervisor) -> None:
    critical, background = Idle(name="writer"), Background(name="monitor")
    with make_supervisor(critical, background) as sup:
        assert sup.wait_running(5)
        assert critical.thread is not None and background.thread is not None
        assert critical.thread.daemon is False and critical.thread.name == "bgservices:writer"
        assert background.thread.daemon is True and background.thread.name == "bgservices:monitor"
        assert [s["daemon"] for s in sup.status().values()] == [False, True]


def test_started_from_a_daemon_thread_critical_services_are_still_non_daemon(
    make_supervisor,
) -> None:
    critical, background = Idle(), Background()
    sup = make_supervisor(critical, background)
    starter = threading.Thread(target=sup.start, daemon=True)
    starter.start()
    starter.join(5)
    assert sup.wait_running(5)
    assert critical.thread is not None and critical.thread.daemon is False
    assert background.thread is not None and background.thread.daemon is True


def test_config_demotion_runs_a_daemon_safe_class_as_critical(make_supervisor) -> None:
    svc = Background(daemon=False)
    with make_supervisor(svc) as sup:
        assert sup.wait_running(5)
        assert svc.thread is not None and svc.thread.daemon is False


def test_start_in_order_stop_in_reverse(make_supervisor) -> None:
    """A chain (c requires b requires a) starts in order and stops in reverse."""
    journal: list[str] = []
    services = [Idle(name="a"), Idle(name="b", requires=["a"]), Idle(name="c", requires=["b"])]
    for s in services:
        s.journal = journal
    sup = make_supervisor(*services)
    sup.start()
    assert journal == ["setup a", "setup b", "setup c"]  # start() returned after every setup
    assert all(s.state is ServiceState.RUNNING for s in services)
    sup.stop()
    assert journal[3:] == ["teardown c", "teardown b", "teardown a"]


def test_names_are_unique(make_supervisor) -> None:
    sup = make_supervisor(Idle())
    with pytest.raises(ValueError, match="already supervised"):
        sup.add(Idle())
    with pytest.raises(TypeError):
        sup.add(object())  # type: ignore[arg-type]


def test_bad_supervisor_settings_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        Supervisor(shutdown_timeout=0, failure_policy="panic")  # type: ignore[arg-type]
    assert [str(p) for p in info.value.problems] == [
        "shutdown_timeout: must be > 0 (got 0)",
        "failure_policy: must be one of 'isolate', 'shutdown' (got 'panic')",
    ]


def test_isolate_keeps_others_running_and_reports_unhealthy(make_supervisor) -> None:
    ok, bad = Idle(), Crashing(restart="never")
    with make_supervisor(ok, bad) as sup:
        assert bad.wait_for_state(ServiceState.FAILED, timeout=5)
        assert ok.state is ServiceState.RUNNING
        assert not sup.healthy


def test_healthy_ignores_daemon_safe_failures(make_supervisor) -> None:
    class FlakyMonitor(Crashing):
        daemon_safe = True

    ok, bad = Idle(), FlakyMonitor(restart="never")
    with make_supervisor(ok, bad) as sup:
        assert bad.wait_for_state(ServiceState.FAILED, timeout=5)
        assert sup.healthy


def test_shutdown_policy_stops_everything_and_run_fails(make_supervisor) -> None:
    ok, bad = Idle(), Crashing(max_restarts=1)
    sup = make_supervisor(ok, bad, failure_policy="shutdown", backoff=FAST)
    assert sup.run() == 1
    assert ok.state is ServiceState.STOPPED and bad.state is ServiceState.FAILED


def test_run_returns_zero_once_every_service_has_ended(make_supervisor) -> None:
    class Once(Service):
        def run(self) -> None:
            pass

    sup = make_supervisor(Once(name="one"), Once(name="two"))
    assert sup.run() == 0
    assert [s.state for s in sup] == [ServiceState.STOPPED, ServiceState.STOPPED]


def test_stop_twice_and_from_four_threads_at_once(make_supervisor) -> None:
    services = [Idle(name=f"s{i}") for i in range(20)]
    sup = make_supervisor(*services)
    sup.start()
    reports: list[Any] = []
    barrier = threading.Barrier(4)

    def stopper() -> None:
        barrier.wait(5)
        reports.append(sup.stop())

    threads = [threading.Thread(target=stopper) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(reports) == 4 and all(r.clean for r in reports)
    assert len({id(r) for r in reports}) == 1  # the one stop, reported to every caller
    assert sup.stop() is reports[0]
    assert all(s.state is ServiceState.STOPPED for s in services)


def test_stop_from_inside_a_service_does_not_deadlock(make_supervisor) -> None:
    holder: dict[str, Supervisor] = {}

    class Quitter(Service):
        def run(self) -> None:
            holder["report"] = holder["sup"].stop()  # type: ignore[assignment]

    other = Idle()
    sup = holder["sup"] = make_supervisor(other, Quitter())
    sup.start()
    assert sup.wait_stopped(5)
    assert other.state is ServiceState.STOPPED
    assert holder["report"].clean  # type: ignore[attr-defined]


def test_a_straggler_is_named_with_its_stack_and_not_waited_on(make_supervisor, recorder) -> None:
    slow = Straggler()
    sup = make_supervisor(Idle(), slow, daemon_grace=2.0)  # time for the idle one, asked late
    sup.start()
    try:
        report = sup.stop(timeout=0.2)
        assert report.stragglers == ("straggler",) and not report.clean
        assert 0.2 <= report.elapsed < 0.2 + 2.0 + 1
        event = recorder.wait_for("supervisor.straggler")
        assert event["service"] == "straggler"
        assert "in run" in event["stack"] and "release.wait" in event["stack"]
        assert id(sup) in _exit._started  # a live critical straggler keeps the exit hook
    finally:
        slow.release.set()
        assert slow.thread is not None
        slow.thread.join(5)
        assert not slow.thread.is_alive()


def test_a_busy_daemon_safe_service_is_abandoned_after_its_grace(
    make_supervisor, recorder, caplog
) -> None:
    class BusyMonitor(Straggler):
        daemon_safe = True

    busy = BusyMonitor()
    caplog.set_level(logging.INFO, "bgservices.supervisor")  # recorder captures at DEBUG
    sup = make_supervisor(Idle(), busy, daemon_grace=0.05)
    sup.start()
    try:
        report = sup.stop(timeout=30)
        assert report.abandoned == ("busy_monitor",) and report.stragglers == ()
        assert report.clean and report.elapsed < 10  # after its grace, not the 30 s deadline
        event = recorder.wait_for("supervisor.abandoned")  # at INFO: no stack, it is no crash
        assert event == {
            "event": "supervisor.abandoned", "log_level": "info", "timestamp": event["timestamp"],
            "service": "busy_monitor", "state": "stopping",
        }  # fmt: skip
    finally:
        busy.release.set()
        assert busy.thread is not None
        busy.thread.join(5)
    caplog.set_level(logging.DEBUG, "bgservices.supervisor")  # at DEBUG: where it was
    busy.release.clear()
    sup.start()
    try:
        assert sup.stop(timeout=5).abandoned == ("busy_monitor",)
        latest = [e for e in recorder if e["event"] == "supervisor.abandoned"][-1]
        assert "release.wait" in latest["stack"]
        assert id(sup) not in _exit._started
    finally:
        busy.release.set()
        assert busy.thread is not None
        busy.thread.join(5)
        assert not busy.thread.is_alive()


def test_daemon_safe_services_get_a_grace_for_teardown(make_supervisor) -> None:
    journal: list[str] = []
    svc = Background()
    svc.journal = journal
    with make_supervisor(svc, daemon_grace=2.0) as sup:
        assert sup.wait_running(5)
    assert journal == ["setup background", "teardown background"]


def test_restart_remove_and_add_while_running(make_supervisor, recorder) -> None:
    journal: list[str] = []
    a, b = Idle(name="a"), Idle(name="b")
    a.journal = b.journal = journal
    sup = make_supervisor(a, b)
    sup.start()
    first_thread = a.thread
    sup.restart("a")
    assert a.state is ServiceState.RUNNING and a.thread is not first_thread
    assert sup.remove("b") is b and b.state is ServiceState.STOPPED
    assert [s.name for s in sup] == ["a"]
    c = Idle(name="c", requires=["a"])  # so that it stops before a
    c.journal = journal
    sup.add(c)
    assert c.wait_for_state(ServiceState.RUNNING, timeout=5)
    with pytest.raises(KeyError, match="no service named 'zz'"):
        sup.restart("zz")
    sup.stop()
    assert journal == [
        "setup a", "setup b", "teardown a", "setup a", "teardown b", "setup c",
        "teardown c", "teardown a",
    ]  # fmt: skip


def test_a_failing_listener_is_logged_and_others_still_hear(make_supervisor, recorder) -> None:
    def broken(event: Any) -> None:
        raise ZeroDivisionError

    sup = make_supervisor(Idle())
    sup.add_listener(broken)
    sup.start()
    assert sup.wait_running(5)
    sup.stop()
    assert "service.stopped" in recorder.names("idle")


def test_a_listener_that_is_a_long_list_is_named_from_a_few_of_its_items(
    make_supervisor, recorder
) -> None:
    shown = []

    class Item:
        def __repr__(self) -> str:
            shown.append(self)
            return "item"

    class Events(list):  # a list of events handed over by mistake: not callable
        pass

    sup = make_supervisor(Idle())
    sup.add_listener(Events(Item() for _ in range(10_000)))
    sup.start()
    failed = recorder.wait_for("listener.failed")
    assert failed["listener"].startswith("Events([item, item")
    sup.stop()
    failures = len(recorder.matching("listener.failed"))
    assert len(shown) <= 10 * failures  # each failure names a few items, not ten thousand


def test_wait_running_times_out_when_a_service_cannot_start(make_supervisor) -> None:
    class NoSetup(Service):
        def setup(self) -> None:
            raise OSError("unreachable")

        def run(self) -> None:
            pass

    with make_supervisor(NoSetup(restart="never")) as sup:
        assert sup.wait_running(timeout=0.1) is False


def test_a_stopped_supervisor_can_start_again(make_supervisor) -> None:
    class Ticker(PeriodicService):
        interval = 0.001

        def tick(self) -> None:
            pass

    services = [Ticker(name=f"t{i}") for i in range(20)]
    sup = make_supervisor(*services)
    for _ in range(10):
        sup.start()
        assert sup.wait_running(5)
        assert sup.stop().clean
    assert threading.active_count() < 20


def test_a_start_after_a_stop_waits_for_its_straggler_and_never_skips_it(
    make_supervisor,
) -> None:
    # a service whose teardown outlived the stop is started again only once that run has
    # ended; while it still runs, start() names it rather than skipping it in silence
    release = threading.Event()

    class Slow(Idle):
        def teardown(self) -> None:
            super().teardown()
            release.wait(10)

    journal: list[str] = []
    slow, quick = Slow(name="slow"), Idle(name="quick")
    slow.journal = quick.journal = journal
    sup = make_supervisor(slow, quick, shutdown_timeout=1.0)  # room for "quick" under load
    sup.start()
    assert sup.stop().stragglers == ("slow",)
    with pytest.raises(RuntimeError, match="'slow' still running from the last stop"):
        sup.start()
    assert sup.phase is Phase.STOPPED and journal.count("setup quick") == 1  # nothing began
    release.set()
    sup.start()  # waits for the straggler's run to end, then starts both again
    assert slow.state is ServiceState.RUNNING
    assert journal.count("setup slow") == journal.count("setup quick") == 2
    assert sup.stop().clean


def test_stop_at_exit_false_is_never_hooked(make_supervisor) -> None:
    sup = make_supervisor(Idle(), stop_at_exit=False)
    sup.start()
    assert id(sup) not in _exit._started
    sup.stop()


def test_request_stop_stops_a_started_supervisor_from_any_thread_without_blocking(
    make_supervisor,
) -> None:
    svc = Idle()
    sup = make_supervisor(svc)
    sup.start()
    caller = threading.Thread(target=sup.request_stop)
    caller.start()
    caller.join(1)
    assert not caller.is_alive()  # it only begins the stop
    assert sup.wait_stopped(5)
    assert svc.state is ServiceState.STOPPED and sup.phase is Phase.STOPPED


def test_get_returns_the_service_typed_or_says_what_it_is(make_supervisor) -> None:
    idle = Idle()
    sup = make_supervisor(idle)
    assert sup.get("idle", Idle) is idle
    with pytest.raises(TypeError, match="service 'idle' is a Idle, not a Background"):
        sup.get("idle", Background)
    with pytest.raises(KeyError, match="no service named 'nope'"):
        sup.get("nope")


class SlowIdle(Idle):
    pause = 0.05

    def teardown(self) -> None:
        time.sleep(self.pause)  # the work a teardown does: a requirement must outlive it
        super().teardown()


def test_a_requirement_listed_twice_still_stops_after_its_dependents(make_supervisor) -> None:
    journal: list[str] = []
    services = [
        SlowIdle(name="a"),
        SlowIdle(name="e", requires=["a"]),
        SlowIdle(name="b", requires=["a", "a"]),
        SlowIdle(name="y", requires=["e"]),
    ]
    for service in services:
        service.journal = journal
    services[1].pause = 0.3  # "e" takes longest: "a", stopped alongside it, would end first
    sup = make_supervisor(*services)
    sup.start()
    assert sup.stop().clean
    order = [line.split()[1] for line in journal if line.startswith("teardown")]
    assert order.index("a") > max(order.index("e"), order.index("b"))
    assert order.index("e") > order.index("y")


def test_a_stuck_daemon_safe_service_holds_back_no_later_stop_wave(
    make_supervisor, recorder
) -> None:
    stuck = Straggler(name="stuck")
    stuck.daemon = True
    required, dependent = Idle(name="required"), Idle(name="dependent", requires=["required"])
    sup = make_supervisor(required, dependent, stuck, daemon_grace=0.1)
    sup.start()
    try:
        report = sup.stop(timeout=5)
    finally:
        stuck.release.set()
    assert report.stragglers == () and report.abandoned == ("stuck",)
    assert required.state is ServiceState.STOPPED and dependent.state is ServiceState.STOPPED
    assert recorder.matching("supervisor.deadline") == []  # "required" was asked in its turn
    assert report.elapsed < 5  # not held back until the deadline by "stuck"


def test_slow_stops_overlap_beyond_the_stop_window(make_supervisor, recorder) -> None:
    # every teardown waits until all 60 are in theirs: only if each is asked while the
    # first ones still run (the window gives way) do they all end, well before the deadline
    count = supervisor_module._STOP_WINDOW + 28
    together = threading.Barrier(count, timeout=5)

    class Together(Idle):
        def teardown(self) -> None:
            together.wait()

    services = [Together(name=f"t{i}", journal=[]) for i in range(count)]
    sup = make_supervisor(*services, shutdown_timeout=10)
    sup.start()
    report = sup.stop()
    assert report.clean
    assert recorder.matching("service.teardown_failed") == []  # no broken barrier
    assert report.elapsed < 5


def test_a_late_service_widens_the_stop_window_rather_than_waking_all(
    make_supervisor, monkeypatch
) -> None:
    # the first one asked holds its teardown until the last one asked reaches its own. Each
    # time the window fills with it still running, the stop waits for it once more and
    # doubles the window: the services past twice the window are asked after two such
    # waits, where the rest used to be asked at once after the first
    wait = 0.05
    monkeypatch.setattr(supervisor_module, "_WINDOW_WAIT", wait)
    window = supervisor_module._STOP_WINDOW
    count = 2 * window + 8
    last_reached = threading.Event()
    began: dict[str, float] = {}

    class Held(Idle):
        def teardown(self) -> None:
            began[self.name] = time.monotonic()
            if self.name == "h0":  # asked last (newest first)
                last_reached.set()
            elif self.name == f"h{count - 1}":  # asked first
                last_reached.wait(10)

    services = [Held(name=f"h{i}", journal=[]) for i in range(count)]
    sup = make_supervisor(*services, shutdown_timeout=10)
    sup.start()
    asked = time.monotonic()
    report = sup.stop()
    assert report.clean and last_reached.is_set()
    past_two_windows = [began[f"h{i}"] for i in range(count - 2 * window)]
    assert min(past_two_windows) - asked >= 2 * wait


def test_the_stop_window_never_holds_a_stop_past_its_deadline(make_supervisor, monkeypatch) -> None:
    # every teardown is held: with a window wait far longer than the stop's timeout, the
    # stop still asks the rest and returns at its deadline, naming the stragglers
    monkeypatch.setattr(supervisor_module, "_WINDOW_WAIT", 30.0)
    release = threading.Event()

    class Held(Idle):
        def teardown(self) -> None:
            release.wait(20)

    services = [Held(name=f"h{i}", journal=[]) for i in range(supervisor_module._STOP_WINDOW + 4)]
    sup = make_supervisor(*services)
    sup.start()
    try:
        report = sup.stop(timeout=0.5)
    finally:
        release.set()
    assert report.elapsed < 10  # not the 30 s the window would have waited
    assert all(s.stopping for s in services)  # every one was asked
    assert set(report.stragglers) == {s.name for s in services}
    for service in services:  # released: each ends its teardown and its thread
        assert service.thread is not None
        service.thread.join(10)
        assert not service.thread.is_alive()


def test_a_stop_cut_short_by_ctrl_c_still_asks_every_service(make_supervisor) -> None:
    # the first service asked sends SIGINT to this process as its teardown begins: with
    # Python's own handler (no handler of ours), KeyboardInterrupt cuts stop() short while
    # the window waits for that service. Every service is asked even so, and every critical
    # teardown runs, so that the exit hook, waiting next, waits for stops under way
    count = 3 * supervisor_module._STOP_WINDOW
    release = threading.Event()
    torn: list[str] = []

    class Interrupting(Idle):
        def teardown(self) -> None:
            torn.append(self.name)
            if self.name == f"s{count - 1}":  # asked first (newest first)
                os.kill(os.getpid(), signal.SIGINT)
                release.wait(10)

    services = [Interrupting(name=f"s{i}") for i in range(count)]
    sup = make_supervisor(*services)
    sup.start()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        sup.stop()
    assert all(s.stopping for s in services)
    release.set()
    for service in services:
        assert service.thread is not None
        service.thread.join(10)
    assert sorted(torn) == sorted(s.name for s in services)


def test_ctrl_c_the_kernel_hands_to_another_thread_still_cuts_a_stop_short(
    make_supervisor,
) -> None:
    # the kernel may deliver a process's SIGINT to any thread; CPython handles it in the
    # main thread once that wakes: a stop waiting on a slow teardown must wake for it
    # within a slice, not at its deadline
    release = threading.Event()

    class Slow(Idle):
        def teardown(self) -> None:
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread
            release.wait(30)

    slow = Slow(name="slow")
    sup = make_supervisor(slow, shutdown_timeout=20.0)
    sup.start()
    began = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            sup.stop()
        assert time.monotonic() - began < 10  # not the 20 s deadline
    finally:
        release.set()
    assert slow.thread is not None
    slow.thread.join(10)


def test_sigterm_the_kernel_hands_to_another_thread_still_ends_run(make_supervisor) -> None:
    class Signaller(Idle):
        def run(self) -> None:
            until(lambda: sup._changed._waiters)  # the main thread waits in run()
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # to this thread
            super().run()

    sup = make_supervisor(Signaller(name="signaller"))
    assert sup.run() == 0  # woken by the signal, stopped gracefully (it used to wait forever)
    assert sup.phase is Phase.STOPPED


def test_idle_services_beyond_the_stop_window_all_stop(make_supervisor) -> None:
    services = [Idle(name=f"i{i}", journal=[]) for i in range(3 * supervisor_module._STOP_WINDOW)]
    sup = make_supervisor(*services)
    sup.start()
    report = sup.stop(timeout=10)
    assert report.clean
    assert all(s.state is ServiceState.STOPPED for s in services)
    assert not [t for t in threading.enumerate() if t.name.startswith("bgservices:i")]


def test_add_judges_only_the_added_service_names(make_supervisor) -> None:
    sup = make_supervisor(Idle(name="b"), Idle(name="a", requires=["b"]))
    sup.start()
    sup.remove("b")  # "a" now requires a name no longer supervised: its problem, not c's
    added = sup.add(Idle(name="c", requires=["a"]))
    assert added.wait_for_state(ServiceState.RUNNING, timeout=5)
    with pytest.raises(ConfigError, match=r"d\.requires\[0\]: unknown service 'nope'"):
        sup.add(Idle(name="d", requires=["nope"]))
