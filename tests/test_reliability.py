"""Faults a service can commit, races, hygiene and security: nothing hangs, leaks or is lost."""

from __future__ import annotations

import logging
import os
import signal
import stat
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest

from bgservices import Backoff, ConfigError, PeriodicService, Service, ServiceState, Supervisor
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
    crashes = [e for e in recorder.events if e.event == "service.crashed"]
    assert len(crashes) == expected_restarts + 1
    assert {e.fields["hook"] for e in crashes} == {"setup" if hook == "setup" else "run"}
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
    assert recorder.wait_event("service.crashed", "faulty").fields["error"] == repr(exc)
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
        assert "in teardown" in recorder.wait_event("supervisor.straggler").fields["stack"]
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
    recorder.wait_event("service.backoff")
    assert svc.thread is not None and svc.thread.native_id is not None
    native_id = svc.thread.native_id

    def thread_cpu() -> float:
        times = {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}
        return times.get(native_id, 0.0)

    before = thread_cpu()
    assert svc.wait_for_state(ServiceState.FAILED, timeout=10)
    spent = thread_cpu() - before
    delays = [e.fields["delay"] for e in recorder.events if e.event == "service.backoff"]
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
