"""Faults a service can commit, races, hygiene and security: nothing hangs, leaks or is lost."""

from __future__ import annotations

import logging
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from bgservices import (
    Backoff,
    ConfigError,
    LifecycleEvent,
    PeriodicService,
    Service,
    ServiceState,
    StopReport,
    Supervisor,
)
from bgservices.services import CacheWarmer, KeepAlive, LogCollector, MemoryMonitor

from ._process import App
from .test_supervisor import Idle

FAST = Backoff(initial=0.001, maximum=0.005)


class Faulty(PeriodicService):
    """Raises what it is told from the hook it is told."""

    interval = 0.005

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.fault_in = ""
        self.fault: BaseException = RuntimeError("injected")
        self.runs = 0

    def _maybe(self, hook: str) -> None:
        if self.fault_in == hook:
            raise self.fault

    def setup(self) -> None:
        self._maybe("setup")

    def run(self) -> None:
        self.runs += 1
        self._maybe("run")
        super().run()

    def tick(self) -> None:
        self._maybe("tick")

    def teardown(self) -> None:
        self._maybe("teardown")

    def on_stop_requested(self) -> None:
        self._maybe("on_stop_requested")


@pytest.mark.parametrize("policy", ["on-failure", "always", "never"])
@pytest.mark.parametrize("hook", ["setup", "run", "tick"])
def test_a_crash_in_setup_run_or_tick_follows_the_restart_policy(
    make_supervisor, recorder, hook: str, policy: str
) -> None:
    bystander = Idle(name="bystander")
    svc = Faulty(name="faulty", restart=policy, max_restarts=2, max_consecutive_errors=1)
    svc.fault_in = hook
    with make_supervisor(bystander, svc, backoff=FAST):
        assert svc.wait_for_state(ServiceState.FAILED, timeout=10)
        assert bystander.state is ServiceState.RUNNING  # others unaffected
    expected_restarts = 0 if policy == "never" else 2
    assert (svc.restarts, svc.crashes) == (expected_restarts, expected_restarts + 1)
    assert svc.last_error is not None and svc.last_error["message"] == "injected"
    crashes = [e for e in recorder if e["event"] == "service.crashed"]
    assert len(crashes) == expected_restarts + 1
    assert {e["hook"] for e in crashes} == {"setup" if hook == "setup" else "run"}
    if hook == "tick":
        assert svc.errors == expected_restarts + 1
    assert bystander.state is ServiceState.STOPPED


@pytest.mark.parametrize("hook", ["teardown", "on_stop_requested"])
def test_a_fault_while_stopping_is_logged_and_the_stop_completes(
    make_supervisor, recorder, hook: str
) -> None:
    bystander, svc = Idle(name="bystander"), Faulty(name="faulty")
    svc.fault_in = hook
    sup = make_supervisor(bystander, svc)
    sup.start()
    assert sup.wait_running(5)
    report = sup.stop(timeout=5)
    assert report.clean and svc.state is ServiceState.STOPPED
    assert bystander.state is ServiceState.STOPPED
    assert f"service.{hook}_failed" in recorder.names("faulty")
    assert svc.last_error is not None and svc.last_error["message"] == "injected"


@pytest.mark.parametrize(
    "exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()], ids=lambda e: type(e).__name__
)
def test_base_exceptions_in_a_service_are_crashes_not_silence(
    make_supervisor, recorder, exc: BaseException
) -> None:
    bystander, svc = Idle(name="bystander"), Faulty(name="faulty", restart="never")
    svc.fault_in, svc.fault = "run", exc
    sup = make_supervisor(bystander, svc)
    sup.start()
    assert svc.wait_for_state(ServiceState.FAILED, timeout=5)
    assert sup.running and bystander.state is ServiceState.RUNNING
    assert svc.crashes == 1 and svc.last_error is not None
    assert svc.last_error["type"] == type(exc).__name__
    assert recorder.wait_for("service.crashed", service="faulty")["error"] == repr(exc)
    sup.stop()


def test_a_hanging_teardown_is_a_straggler_with_its_stack(make_supervisor, recorder) -> None:
    release = threading.Event()

    class SlowToClose(Idle):
        def teardown(self) -> None:
            release.wait(10)

    slow = SlowToClose()
    sup = make_supervisor(slow)
    sup.start()
    try:
        report = sup.stop(timeout=0.2)
        assert report.stragglers == ("slow_to_close",)
        assert "in teardown" in recorder.wait_for("supervisor.straggler")["stack"]
    finally:
        release.set()
        assert slow.thread is not None
        slow.thread.join(5)
        assert not slow.thread.is_alive()


def test_backoff_delays_grow_as_documented_and_burn_no_cpu(make_supervisor, recorder) -> None:
    svc = Faulty(name="faulty", max_restarts=3)
    svc.fault_in = "run"
    sup = make_supervisor(svc, backoff=Backoff(initial=0.2, maximum=0.8))
    sup.start()
    recorder.wait_for("service.backoff")
    assert svc.thread is not None and svc.thread.native_id is not None
    native_id = svc.thread.native_id

    def thread_cpu() -> float:
        times = {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}
        return times.get(native_id, 0.0)

    before = thread_cpu()
    assert svc.wait_for_state(ServiceState.FAILED, timeout=10)
    spent = thread_cpu() - before
    delays = [e["delay"] for e in recorder if e["event"] == "service.backoff"]
    ceilings = [0.2, 0.4, 0.8]
    assert len(delays) == 3
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert spent < 0.1  # waited about a second in backoff, on an event, not in a loop
    sup.stop()


def test_a_hundred_start_stop_cycles_of_twenty_services(make_supervisor) -> None:
    class Ticker(PeriodicService):
        interval = 0.001

        def tick(self) -> None:
            pass

    services = [Ticker(name=f"t{i}") if i % 2 else Idle(name=f"i{i}") for i in range(20)]
    sup = make_supervisor(*services)
    baseline = threading.active_count()
    for _ in range(100):
        sup.start()
        assert sup.wait_running(5)
        assert sup.stop().clean
        assert threading.active_count() == baseline


def test_stop_while_start_is_still_running_setups(make_supervisor) -> None:
    entered, release = threading.Event(), threading.Event()

    class SlowSetup(Idle):
        def setup(self) -> None:
            entered.set()
            release.wait(10)

    first, slow, never = Idle(name="first"), SlowSetup(name="slow"), Idle(name="never")
    sup = make_supervisor(first, slow, never)
    starter = threading.Thread(target=sup.start)
    starter.start()
    assert entered.wait(5)
    stopper = threading.Thread(target=sup.stop)
    stopper.start()
    assert slow.wait_for_state(ServiceState.STOPPING, timeout=5)  # the stop has begun
    release.set()
    starter.join(10)
    stopper.join(10)
    assert not starter.is_alive() and not stopper.is_alive()
    assert first.state is ServiceState.STOPPED and slow.state is ServiceState.STOPPED
    assert never.state is ServiceState.NEW  # start() saw the stop and launched nothing more


def test_a_signal_during_start_stops_what_started_and_exits(tmp_path: Path) -> None:
    app = App.script("slow_start_app.py", str(tmp_path))
    app.wait_line("IN SETUP")
    app.proc.send_signal(signal.SIGTERM)
    code, _out, err = app.finish(timeout=10)
    assert code == 0, err
    assert (tmp_path / "teardown-first").exists() and (tmp_path / "teardown-slow").exists()
    assert not (tmp_path / "setup-later").exists()


def test_the_builtins_leave_no_file_or_socket_open(
    make_supervisor, tmp_path: Path, unused_port: int
) -> None:
    process = psutil.Process()
    files_before = {f.path for f in process.open_files()}
    sockets_before = len(process.net_connections())
    logging.getLogger("leaks").setLevel(logging.INFO)
    services = [
        LogCollector(path=str(tmp_path / "a.log"), loggers=["leaks"]),
        MemoryMonitor(interval=0.01),
        CacheWarmer(interval=0.01, loader=lambda: {"a": 1}),
        KeepAlive(url=f"http://127.0.0.1:{unused_port}/", interval=0.01, timeout=0.5),
    ]
    with make_supervisor(*services) as sup:
        assert sup.wait_running(5)
        logging.getLogger("leaks").info("something")
        assert services[2].wait_ready(5)  # type: ignore[attr-defined]
    assert {f.path for f in process.open_files()} == files_before
    assert len(process.net_connections()) == sockets_before


def test_log_files_are_never_world_writable_even_with_umask_0(
    make_supervisor, tmp_path: Path
) -> None:
    previous = os.umask(0)
    try:
        with make_supervisor(LogCollector(path=str(tmp_path / "x.log"), loggers=["perm"])):
            pass
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "x.log").stat().st_mode)
    assert mode & stat.S_IWOTH == 0 and mode == 0o664


def test_a_symlinked_log_path_is_refused_not_followed(make_supervisor, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    (tmp_path / "app.log").symlink_to(target)
    collector = LogCollector(path=str(tmp_path / "app.log"), loggers=["sym"], restart="never")
    with make_supervisor(collector):
        assert collector.wait_for_state(ServiceState.FAILED, timeout=5)
    assert collector.last_error is not None and "symbolic links" in collector.last_error["message"]
    assert target.read_text() == "precious\n"


def test_options_named_like_secrets_are_never_echoed() -> None:
    class Uploader(Service):
        api_key: str = "x"
        db_password: str = "y"

        def run(self) -> None:
            pass

    with pytest.raises(ConfigError) as info:
        Uploader(api_key=123456789, db_password=987654321)
    text = str(info.value)
    assert "123456789" not in text and "987654321" not in text
    assert text.count("<redacted>") == 2


def test_stop_report_of_an_unstarted_supervisor_is_empty() -> None:
    report = Supervisor([Idle()]).stop()
    assert report.clean and report.stopped == () and report.elapsed == 0.0


# -- user code cannot stretch a stop (issue 10, class 1) ------------------------------------------


@pytest.mark.parametrize("daemon", [False, True], ids=["critical", "daemon-safe"])
def test_a_blocking_on_stop_requested_cannot_stretch_the_stop(
    make_supervisor, daemon: bool
) -> None:
    release = threading.Event()

    class Blocking(Idle):
        daemon_safe = True  # daemon=False demotes it to critical

        def on_stop_requested(self) -> None:
            release.wait(30)

    blocking = Blocking(daemon=daemon)
    bystander = Idle(name="bystander")
    sup = make_supervisor(bystander, blocking, daemon_grace=0.1)
    sup.start()
    try:
        began = time.monotonic()
        report = sup.stop(timeout=0.3)
        assert time.monotonic() - began < 0.3 + 0.1 + 0.5
        if daemon:
            assert report.abandoned == ("blocking",) and report.clean
        else:
            assert report.stragglers == ("blocking",) and not report.clean
        assert bystander.state is ServiceState.STOPPED
    finally:
        release.set()
        assert blocking.thread is not None
        blocking.thread.join(5)


@pytest.mark.parametrize(
    "exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()], ids=lambda e: type(e).__name__
)
def test_a_listener_raising_a_base_exception_changes_nothing(
    make_supervisor, caplog, exc: BaseException
) -> None:
    svc = Idle()
    sup = make_supervisor(svc)

    def hostile(event: LifecycleEvent) -> None:
        raise exc

    sup.add_listener(hostile)
    sup.start()  # nothing escapes, whatever the listener raises on start-up events
    assert sup.wait_running(5)
    assert svc.thread is not None and svc.thread.is_alive()  # RUNNING means running
    report = sup.stop()
    assert report.clean and svc.state is ServiceState.STOPPED and not svc.thread.is_alive()
    failures = [r for r in caplog.records if getattr(r, "event", None) == "listener.failed"]
    assert failures and failures[0].exc_info is not None
    assert failures[0].exc_info[0] is type(exc)


def test_a_listener_that_stops_or_restarts_inside_an_event_cannot_stretch_the_stop(
    make_supervisor,
) -> None:
    a, b = Idle(name="a"), Idle(name="b")
    sup = make_supervisor(a, b, shutdown_timeout=5.0)
    reports: list[StopReport] = []
    refused: list[str] = []

    def meddler(event: LifecycleEvent) -> None:
        if event.event in ("supervisor.stopping", "service.stopping", "service.stopped"):
            reports.append(sup.stop())  # from the stopping thread, or a service's own
            try:
                sup.restart("a")
            except RuntimeError as err:
                refused.append(str(err))

    sup.add_listener(meddler)
    sup.start()
    began = time.monotonic()
    report = sup.stop()
    assert time.monotonic() - began < 1.0  # not shutdown_timeout + daemon_grace
    assert report.clean and a.state is b.state is ServiceState.STOPPED
    assert reports and all(r.in_progress for r in reports)
    assert refused and all(r.startswith("cannot restart") for r in refused)


def test_a_listener_that_blocks_inside_a_stop_holds_it_only_briefly(make_supervisor) -> None:
    # the stopping thread hands its events to the courier and waits for a listener only a
    # moment: the services are asked, and the stop returns, long before the listener ends
    services = [Idle(name=f"s{i}") for i in range(5)]
    sup = make_supervisor(*services, shutdown_timeout=5.0)
    release = threading.Event()
    heard: list[str] = []

    def blocker(event: LifecycleEvent) -> None:
        heard.append(event.event)
        if event.event == "supervisor.stopping":
            release.wait(20)

    sup.add_listener(blocker)
    sup.start()
    began = time.monotonic()
    try:
        report = sup.stop()
        elapsed = time.monotonic() - began
    finally:
        release.set()
    assert elapsed < 2.0  # not the 20 s the listener blocks, nor shutdown_timeout
    assert report.clean and all(s.state is ServiceState.STOPPED for s in services)
    assert "supervisor.stopping" in heard  # it was called, from the courier's thread


# -- lifecycle operations are race-free (issue 10, class 3) ---------------------------------------


class SlowSetup(Idle):
    """setup() waits until released (or stopped), so a test can act while start() waits."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.entered = threading.Event()
        self.release = threading.Event()

    def setup(self) -> None:
        self.entered.set()
        while not self.release.is_set() and not self.wait(0.01):
            pass


@pytest.mark.parametrize("operation", ["remove", "restart"])
def test_remove_or_restart_while_start_waits_in_a_slow_setup(
    make_supervisor, operation: str
) -> None:
    slow, later = SlowSetup(name="slow"), Idle(name="later")
    sup = make_supervisor(slow, later)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            sup.start()
        except BaseException as exc:
            errors.append(exc)

    starter = threading.Thread(target=start)
    starter.start()
    assert slow.entered.wait(5)
    if operation == "remove":
        assert sup.remove("slow") is slow
    else:
        slow.release.set()
        sup.restart("slow")
    starter.join(5)
    assert not starter.is_alive() and not errors
    assert later.wait_for_state(ServiceState.RUNNING, timeout=5)
    if operation == "remove":
        assert [s.name for s in sup] == ["later"] and slow.state is ServiceState.STOPPED
    else:
        assert slow.wait_for_state(ServiceState.RUNNING, timeout=5)
    assert sup.stop().clean


def test_restart_racing_stop_never_leaves_a_service_running(make_supervisor) -> None:
    for _ in range(30):
        services = [Idle(name=f"r{i}") for i in range(3)]
        sup = make_supervisor(*services)
        sup.start()
        unexpected: list[BaseException] = []
        go = threading.Barrier(2)

        def restarter(
            sup: Supervisor = sup,
            go: threading.Barrier = go,
            unexpected: list[BaseException] = unexpected,
        ) -> None:
            go.wait(5)
            for name in ("r0", "r1", "r2", "r0"):
                try:
                    sup.restart(name)
                except RuntimeError as err:  # defined: the supervisor began stopping
                    if not str(err).startswith("cannot restart"):
                        unexpected.append(err)
                except BaseException as exc:
                    unexpected.append(exc)

        thread = threading.Thread(target=restarter)
        thread.start()
        go.wait(5)
        sup.stop()
        thread.join(10)
        assert not thread.is_alive() and not unexpected
        assert sup.wait_stopped(5)
        for svc in services:  # nothing launched after the stop began, nothing left running
            assert svc.thread is not None
            svc.thread.join(5)
            assert not svc.thread.is_alive() and svc.state.ended, svc


def test_the_same_service_cannot_join_two_supervisors() -> None:
    svc = Idle()
    first = Supervisor([svc])
    with pytest.raises(ValueError, match="already supervised by another Supervisor"):
        Supervisor([svc])
    first.remove("idle")
    Supervisor([svc])  # free again once removed


# -- every wait has an end (issue 10, class 4) ----------------------------------------------------


def test_waits_return_false_at_once_when_their_target_is_unreachable(make_supervisor) -> None:
    class NeverUp(Service):
        restart = "never"

        def setup(self) -> None:
            raise RuntimeError("no")

        def run(self) -> None:
            pass

    down, up = NeverUp(), Idle()
    sup = make_supervisor(up, down)
    sup.start()
    results: list[bool] = []
    waiter = threading.Thread(
        target=lambda: results.extend(
            [sup.wait_running(), down.wait_for_state(ServiceState.RUNNING)]
        )
    )
    waiter.start()
    waiter.join(5)  # no timeout given to the waits themselves
    assert not waiter.is_alive() and results == [False, False]
    sup.stop()
    assert up.wait_for_state(ServiceState.RUNNING) is False  # stopped: it cannot get there


# -- a stop cannot overrun (issue 10, class 9) ----------------------------------------------------


def test_a_thousand_late_services_behind_a_slow_log_sink_stop_by_the_deadline(
    make_supervisor,
) -> None:
    release = threading.Event()

    class Sticky(Service):
        def run(self) -> None:
            while not release.wait(1):  # ignores the stop until the test releases it
                pass

    class SlowSink(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            time.sleep(0.002)  # a slow disk or a remote log shipper

    services = [Sticky(name=f"sticky{i}") for i in range(1000)]
    sup = make_supervisor(*services, daemon_grace=0.1)
    sup.start()
    sink, logger = SlowSink(level=logging.INFO), logging.getLogger("bgservices")
    logger.addHandler(sink)
    logger.setLevel(logging.INFO)
    try:
        began = time.monotonic()
        report = sup.stop(timeout=0.2)
        elapsed = time.monotonic() - began
    finally:
        logger.removeHandler(sink)
        logger.setLevel(logging.NOTSET)
        release.set()
    # the deadline, the grace, and room for a loaded machine: a record per straggler through
    # the 2 ms sink would add 2 s (it took 0.74 s with three test suites on two cores)
    assert elapsed < 0.2 + 0.1 + 1.0, elapsed
    assert sorted(report.stragglers) == sorted(s.name for s in services)  # each one named
    for svc in services:
        assert svc.thread is not None
        svc.thread.join(10)
