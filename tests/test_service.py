from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest

from bgservices import Backoff, DoNotRestart, PeriodicService, Service, ServiceState

FAST = Backoff(initial=0.001, maximum=0.01)


class Recording(Service):
    """Records which hook ran in which thread; behaviour set per test."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls: list[tuple[str, str]] = []
        self.runs = 0
        self.ran = threading.Event()
        self.behaviour = "wait"

    def _note(self, hook: str) -> None:
        self.calls.append((hook, threading.current_thread().name))

    def setup(self) -> None:
        self._note("setup")
        if self.behaviour == "setup-fails":
            raise OSError("no database")

    def run(self) -> None:
        self._note("run")
        self.runs += 1
        self.ran.set()
        if self.behaviour == "raise":
            raise RuntimeError(f"crash {self.runs}")
        if self.behaviour == "return":
            return
        if self.behaviour == "done":
            raise DoNotRestart("nothing left to do")
        while not self.wait(30):
            pass

    def teardown(self) -> None:
        self._note("teardown")

    def on_stop_requested(self) -> None:
        self._note("on_stop_requested")


def hooks(svc: Recording) -> list[str]:
    return [h for h, _ in svc.calls]


def test_hooks_run_in_the_service_thread_and_the_stop_hook_in_its_own(make_supervisor) -> None:
    svc = Recording()
    sup = make_supervisor(svc)
    sup.start()
    assert svc.ran.wait(5)
    sup.stop()
    assert hooks(svc) == ["setup", "run", "on_stop_requested", "teardown"]
    threads = dict(svc.calls)
    assert threads["setup"] == threads["run"] == threads["teardown"] == "bgservices:recording"
    assert threads["on_stop_requested"] == "bgservices:recording:on-stop"  # never the stopper
    assert svc.state is ServiceState.STOPPED


def test_states_are_reported_in_order(make_supervisor, recorder) -> None:
    svc = Recording()
    with make_supervisor(svc):
        assert svc.ran.wait(5)
    assert recorder.names("recording") == [
        "service.starting",
        "service.running",
        "service.stopping",
        "service.stopped",
    ]


def test_teardown_runs_after_a_crash_and_the_error_is_kept(make_supervisor) -> None:
    svc = Recording(restart="never")
    svc.behaviour = "raise"
    with make_supervisor(svc):
        assert svc.wait_for_state(ServiceState.FAILED, timeout=5)
    assert hooks(svc) == ["setup", "run", "teardown"]
    status = svc.status()
    json.dumps(status)
    assert status["state"] == "failed"
    assert status["last_error"]["type"] == "RuntimeError"
    assert status["last_error"]["message"] == "crash 1"
    assert "in run" in status["last_error"]["traceback"]


def test_failed_setup_skips_teardown(make_supervisor) -> None:
    svc = Recording(restart="never")
    svc.behaviour = "setup-fails"
    with make_supervisor(svc):
        assert svc.wait_for_state(ServiceState.FAILED, timeout=5)
    assert hooks(svc) == ["setup"]
    assert svc.last_error is not None and svc.last_error["type"] == "OSError"


def test_on_failure_restarts_a_crash_but_not_a_return(make_supervisor) -> None:
    crashing, returning = Recording(name="crashing"), Recording(name="returning")
    crashing.behaviour, returning.behaviour = "raise", "return"
    with make_supervisor(crashing, returning, backoff=FAST):
        assert crashing.wait_for_state(ServiceState.FAILED, timeout=5)
        assert returning.wait_for_state(ServiceState.STOPPED, timeout=5)
    assert returning.runs == 1 and returning.restarts == 0
    assert crashing.runs == 6 and crashing.restarts == 5


def test_always_restarts_a_run_that_returns(make_supervisor, recorder) -> None:
    svc = Recording(restart="always", max_restarts=2)
    svc.behaviour = "return"
    with make_supervisor(svc, backoff=FAST):
        assert svc.wait_for_state(ServiceState.FAILED, timeout=5)
    assert svc.runs == 3 and svc.restarts == 2


def test_do_not_restart_ends_the_service_for_good(make_supervisor, recorder) -> None:
    svc = Recording(restart="always")
    svc.behaviour = "done"
    with make_supervisor(svc, backoff=FAST):
        assert svc.wait_for_state(ServiceState.STOPPED, timeout=5)
    assert svc.runs == 1 and svc.restarts == 0
    assert recorder.wait_for("service.stopped")["reason"] == "nothing left to do"


def test_restart_storm_gives_up_after_max_restarts_in_window(make_supervisor, recorder) -> None:
    svc = Recording(max_restarts=5, restart_window=60)
    svc.behaviour = "raise"
    with make_supervisor(svc, backoff=Backoff(initial=0.001, maximum=0.05)):
        failed = recorder.wait_for("service.failed")
    assert svc.restarts == 5 and svc.runs == 6
    assert "over 5 restarts in 60s" in failed["reason"]
    attempts = [e["attempt"] for e in recorder if e["event"] == "service.backoff"]
    assert attempts == [1, 2, 3, 4, 5]
    delays = [e["delay"] for e in recorder if e["event"] == "service.backoff"]
    assert all(0.0005 <= d <= 0.05 for d in delays)


def test_backoff_starts_over_after_a_stable_run(make_supervisor, recorder) -> None:
    svc = Recording(max_restarts=3)
    svc.behaviour = "raise"
    with make_supervisor(svc, backoff=Backoff(initial=0.001, maximum=0.01, reset_after=0)):
        recorder.wait_for("service.failed")
    attempts = [e["attempt"] for e in recorder if e["event"] == "service.backoff"]
    assert attempts == [1, 1, 1]


def test_stop_during_backoff_is_immediate_and_nothing_restarts(make_supervisor, recorder) -> None:
    svc = Recording()
    svc.behaviour = "raise"
    sup = make_supervisor(svc, backoff=Backoff(initial=60, maximum=60))
    sup.start()
    recorder.wait_for("service.backoff")
    report = sup.stop(timeout=5)
    assert report.clean and report.elapsed < 5
    assert svc.state is ServiceState.STOPPED and svc.runs == 1 and svc.restarts == 0


def test_on_stop_requested_unblocks_a_blocking_recv(make_supervisor) -> None:
    class Listener(Service):
        def setup(self) -> None:
            self.left, self.right = socket.socketpair()
            self.blocked = threading.Event()

        def run(self) -> None:
            self.blocked.set()
            assert self.left.recv(1) == b""  # blocks until the other end is closed

        def on_stop_requested(self) -> None:
            self.right.close()

        def teardown(self) -> None:
            self.left.close()

    svc = Listener()
    sup = make_supervisor(svc)
    sup.start()
    assert svc.blocked.wait(5)
    report = sup.stop(timeout=5)
    assert report.clean and svc.state is ServiceState.STOPPED and svc.last_error is None


def test_wait_returns_true_at_once_when_stopping(make_supervisor) -> None:
    results: list[bool] = []

    class Sleeper(Service):
        def run(self) -> None:
            results.append(self.wait(3600))

    svc = Sleeper()
    sup = make_supervisor(svc)
    sup.start()
    assert sup.wait_running(5)
    assert sup.stop(timeout=5).clean
    assert results == [True] and svc.stopping


def test_run_must_be_implemented() -> None:
    with pytest.raises(NotImplementedError):
        Service().run()


# -- traps a new user hits (issue 11) --------------------------------------------------------------


@pytest.mark.parametrize("hook", ["setup", "run", "teardown", "tick", "on_stop_requested"])
def test_an_async_hook_on_a_thread_service_is_refused_at_class_definition(hook: str) -> None:
    async def coroutine(self: object) -> None:
        pass

    with pytest.raises(TypeError, match=rf"Ticker\.{hook} is `async def`.*never awaited"):
        type("Ticker", (PeriodicService,), {hook: coroutine})


def test_status_keeps_the_framework_fields_whatever_stats_returns(make_supervisor) -> None:
    class Counting(PeriodicService):
        interval = 0.01

        def tick(self) -> None:
            pass

        def stats(self) -> dict[str, Any]:
            return {"widgets": 3, "state": "not mine to set", "ticks": -1}

    svc = Counting()
    with make_supervisor(svc):
        assert svc.wait_for_state(ServiceState.RUNNING, timeout=5)
        status = svc.status()
    assert status["widgets"] == 3  # the subclass's own figure
    assert status["state"] in ("running", "stopping")  # the framework's fields win
    assert status["ticks"] >= 0 and "errors" in status and "last_tick_at" in status

    class Broken(Counting):
        def stats(self) -> Any:
            return ["not", "a", "dict"]

    assert Broken().status()["stats_error"] == "stats() returned list, not a dict"


@pytest.mark.parametrize("name", ["log", "restarts", "state", "thread", "ticks", "wait"])
def test_an_option_named_like_a_framework_attribute_is_refused(name: str) -> None:
    with pytest.raises(TypeError, match=f"the option '{name}' would shadow"):
        type("Shadow", (PeriodicService,), {"__annotations__": {name: "int"}, name: 1})


def test_a_stop_that_meets_a_thread_not_started_yet_waits_for_its_last_lines() -> None:
    # Supervisor.stop joins each thread once: a join that began before the thread was
    # started must still end with the thread, not with the life cycle (its last lines, the
    # owner's bookkeeping, run after that)
    from ._process import until

    release = threading.Event()

    class Owner:  # a supervisor's part the service calls: its end is slow to report
        _listeners: tuple[Any, ...] = ()

        def _service_changed(self, service: Service) -> None:
            pass

        def _service_ended(self, service: Service) -> None:
            release.wait(10)

    class Quick(Service):
        def run(self) -> None:
            self.wait(10)

    service = Quick(name="quick")
    service._owner = Owner()  # type: ignore[assignment]
    thread = service._arm_thread()
    assert isinstance(thread, threading.Thread)
    seen: list[tuple[bool, bool]] = []
    joiner = threading.Thread(target=lambda: seen.append((service._join(10), thread.is_alive())))
    joiner.start()
    assert until(lambda: service._cond._waiters, timeout=5)  # the join waits, thread unstarted
    assert service._begin_thread(thread) is None
    service._request_stop()
    assert until(lambda: service._exited, timeout=5)  # its life cycle ended; its thread has not
    release.set()
    joiner.join(10)
    assert seen == [(True, False)]  # the join returned once the thread itself had ended
