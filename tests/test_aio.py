"""Async services: life cycle on the supervisor's loop and on a caller's loop, stops and
deadlines, the fault matrix for async hooks, the loop watchdog, and the traps refused."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bgservices import (
    AsyncPeriodicService,
    AsyncService,
    Backoff,
    PeriodicService,
    Service,
    ServiceState,
    Supervisor,
)
from bgservices.cli import main as cli_main
from bgservices.registry import _types, register

from ._process import App
from .conftest import Recorder

FAST = Backoff(initial=0.01, factor=1.0, maximum=0.01)


class Forever(AsyncService):
    """Records its hooks; run() waits for the stop."""

    def init_state(self) -> None:
        super().init_state()
        self.calls: list[str] = []

    async def setup(self) -> None:
        self.calls.append("setup")

    async def run(self) -> None:
        self.calls.append("run")
        while not await self.wait(30):
            pass

    async def teardown(self) -> None:
        await asyncio.sleep(0)  # a real await: teardown runs as a coroutine on the loop
        self.calls.append("teardown")


class Ticker(AsyncPeriodicService):
    interval = 0.005

    async def tick(self) -> None:
        await asyncio.sleep(0)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bgservices:loop"]


# -- on the supervisor's own loop -----------------------------------------------------------


def test_async_services_share_one_loop_thread_and_stop_cleanly(
    make_supervisor: Callable[..., Supervisor], recorder: Recorder
) -> None:
    services = [Forever(name=f"f{n}") for n in range(20)]
    ticker = Ticker()
    sup = make_supervisor(*services, ticker)
    sup.start()
    assert sup.wait_running(5)
    assert len(loop_threads()) == 1
    assert all(s.thread is loop_threads()[0] for s in [*services, ticker])
    recorder.wait_for("service.running", service="ticker")
    report = sup.stop()
    assert report.clean and set(report.stopped) == {s.name for s in [*services, ticker]}
    assert all(s.calls == ["setup", "run", "teardown"] for s in services)
    assert all(s.state is ServiceState.STOPPED for s in services)
    status = ticker.status()
    assert status["ticks"] >= 1 and status["loop_blocked"] == 0 and status["async"] is True


def test_the_loop_thread_is_non_daemon_only_when_a_critical_async_service_runs(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    class Safe(Forever):
        daemon_safe = True

    sup = make_supervisor(Safe())
    sup.start()
    assert loop_threads()[0].daemon is True
    sup.stop()
    for thread in loop_threads():
        thread.join(2)
    sup2 = make_supervisor(Forever(name="critical"))
    sup2.start()
    assert loop_threads()[0].daemon is False
    sup2.stop()


def test_periodic_ticks_keep_the_thread_versions_schedule_and_counters(
    make_supervisor: Callable[..., Supervisor], recorder: Recorder
) -> None:
    stamps: list[float] = []
    done = threading.Event()

    class Stamp(AsyncPeriodicService):
        interval = 0.01

        async def tick(self) -> None:
            stamps.append(time.monotonic())
            if len(stamps) == 20:
                done.set()
            if len(stamps) == 3:
                raise ValueError("one bad tick")

    service = Stamp()
    sup = make_supervisor(service)
    sup.start()
    assert done.wait(5)
    sup.stop()
    status = service.status()
    assert status["errors"] == 1 and status["ticks"] >= 20
    assert status["last_error"]["message"] == "one bad tick"
    assert "service.tick_failed" in recorder.names("stamp")
    assert stamps == sorted(stamps)  # one after another, never overlapping
    # (accuracy and drift are measured by benchmarks/async_services.py, not asserted here)


def test_restart_policy_and_backoff_are_the_thread_versions(
    make_supervisor: Callable[..., Supervisor], recorder: Recorder
) -> None:
    class Crashy(AsyncService):
        max_restarts = 2

        async def run(self) -> None:
            raise RuntimeError("boom")

    service = Crashy()
    sup = make_supervisor(service, backoff=FAST)
    sup.start()
    recorder.wait_for("service.failed", service="crashy")
    assert service.state is ServiceState.FAILED
    assert service.crashes == 3 and service.restarts == 2
    assert recorder.names("crashy").count("service.backoff") == 2


def test_restart_and_remove_work_on_async_services(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    service = Forever()
    sup = make_supervisor(service)
    sup.start()
    sup.restart("forever")
    assert sup.wait_running(5)
    assert "teardown" not in service.calls  # init_state ran again for the new launch
    assert service.calls[0] == "setup"
    sup.remove("forever")
    assert service.state is ServiceState.STOPPED and service.calls[-1] == "teardown"


def test_on_stop_requested_may_be_async_and_teardown_waits_for_it(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    order: list[str] = []

    class Server(AsyncService):
        async def setup(self) -> None:
            self.closed = asyncio.Event()

        async def run(self) -> None:
            await self.closed.wait()  # not self.wait(): only the hook can end it
            order.append("run returned")

        async def on_stop_requested(self) -> None:
            await asyncio.sleep(0.02)
            order.append("hook")
            self.closed.set()

        async def teardown(self) -> None:
            order.append("teardown")

    sup = make_supervisor(Server())
    sup.start()
    assert sup.wait_running(5)
    assert sup.stop().clean
    assert order == ["hook", "run returned", "teardown"]


# -- stops, deadlines, stragglers ------------------------------------------------------------


def test_at_the_deadline_the_task_is_cancelled_and_teardown_still_runs(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    torn_down = threading.Event()

    class Deaf(AsyncService):
        async def run(self) -> None:
            await asyncio.sleep(60)  # ignores the stop request

        async def teardown(self) -> None:
            async with asyncio.timeout(1):  # timeouts work after the cancellation
                await asyncio.sleep(0)
            torn_down.set()

    sup = make_supervisor(Deaf(), shutdown_timeout=0.3, daemon_grace=0.0)
    sup.start()
    began = time.monotonic()
    report = sup.stop()
    elapsed = time.monotonic() - began
    assert report.clean, report
    assert torn_down.is_set()
    assert 0.3 <= elapsed < 5  # at the deadline, not after run()'s 60 s


def test_a_task_that_survives_cancellation_is_a_straggler_with_its_coroutine_stack(
    make_supervisor: Callable[..., Supervisor], recorder: Recorder
) -> None:
    release = threading.Event()

    class Stubborn(AsyncService):
        async def run(self) -> None:
            while not release.is_set():
                with contextlib.suppress(asyncio.CancelledError):  # swallowed: it survives
                    await self.keep_going()

        async def keep_going(self) -> None:
            await asyncio.sleep(0.01)

    sup = make_supervisor(Stubborn(), shutdown_timeout=0.2, daemon_grace=0.0)
    sup.start()
    report = sup.stop()
    release.set()
    assert report.stragglers == ("stubborn",)
    event = recorder.wait_for("supervisor.straggler")
    stack = event["stack"]
    assert "in run" in stack and "keep_going" in stack  # the coroutine's, not the loop's select
    assert "select" not in stack


def test_one_deadline_for_thread_and_async_services(
    make_supervisor: Callable[..., Supervisor],
) -> None:
    release = threading.Event()

    class DeafThread(Service):
        def run(self) -> None:
            release.wait(10)  # ignores the stop until the test releases it

    class DeafTask(AsyncService):
        async def run(self) -> None:
            await asyncio.sleep(60)

    sup = make_supervisor(DeafTask(), DeafThread(), shutdown_timeout=1.0, daemon_grace=0.1)
    sup.start()
    assert sup.wait_running(5)
    began = time.monotonic()
    report = sup.stop()
    elapsed = time.monotonic() - began
    release.set()
    assert report.stragglers == ("deaf_thread",)
    assert "deaf_task" in report.stopped  # cancelled at the deadline, not waited for again
    assert elapsed < 1.8  # one deadline (1.0 + 0.1 grace), not one per kind (2.0 and more)


# -- the fault matrix for async hooks ---------------------------------------------------------


class Boom(BaseException):
    pass


@pytest.mark.parametrize(
    ("where", "error", "event", "state"),
    [
        ("setup", RuntimeError("x"), "service.crashed", ServiceState.FAILED),
        ("run", RuntimeError("x"), "service.crashed", ServiceState.FAILED),
        ("run", Boom("x"), "service.crashed", ServiceState.FAILED),
        ("run", SystemExit(3), "service.crashed", ServiceState.FAILED),
        ("run", asyncio.CancelledError("its own"), "service.crashed", ServiceState.FAILED),
        ("teardown", RuntimeError("x"), "service.teardown_failed", ServiceState.STOPPED),
        ("on_stop_requested", RuntimeError("x"), "service.on_stop_requested_failed", None),
    ],
    ids=[
        "setup",
        "run",
        "base-exception",
        "system-exit",
        "own-cancelled-error",
        "teardown",
        "hook",
    ],
)
def test_async_hook_faults_are_contained(
    make_supervisor: Callable[..., Supervisor],
    recorder: Recorder,
    where: str,
    error: BaseException,
    event: str,
    state: ServiceState | None,
) -> None:
    class Faulty(AsyncService):
        restart = "never"

        async def setup(self) -> None:
            if where == "setup":
                raise error

        async def run(self) -> None:
            if where == "run":
                raise error
            while not await self.wait(30):
                pass

        async def teardown(self) -> None:
            if where == "teardown":
                raise error

        async def on_stop_requested(self) -> None:
            if where == "on_stop_requested":
                raise error

    service = Faulty()
    sup = make_supervisor(service)
    sup.start()
    if where in ("teardown", "on_stop_requested"):
        assert sup.wait_running(5)
        assert sup.stop().clean
    recorder.wait_for(event, service="faulty")
    assert service.last_error is not None and service.last_error["type"] == type(error).__qualname__
    if state is not None:
        assert service.wait_for_state(state, timeout=5)
    sup.stop()
    for thread in loop_threads():
        thread.join(2)
    assert not loop_threads(), "the loop thread outlived its last service"


def test_a_tick_blocking_the_loop_is_reported_once_with_the_loop_threads_stack(
    make_supervisor: Callable[..., Supervisor], recorder: Recorder
) -> None:
    class Hog(AsyncPeriodicService):
        interval = 0.01
        loop_block_threshold = 0.2

        async def tick(self) -> None:
            if self.ticks == 2:
                time.sleep(0.8)  # blocks the loop: every other async service stalls

    resumed = threading.Event()

    class Victim(AsyncPeriodicService):
        interval = 0.01
        loop_block_threshold = None  # not watched: the hog is to blame, not its victims

        async def tick(self) -> None:
            if hog.loop_blocked:
                resumed.set()  # ticking again once the hog let go

    hog = Hog()
    sup = make_supervisor(hog, Victim())
    sup.start()
    event = recorder.wait_for("service.loop_blocked", service="hog")
    assert "time.sleep" in event["stack"] and "in tick" in event["stack"]
    assert resumed.wait(5)
    sup.stop()
    # once for the whole 0.8 s, not once per look (every 0.2 s)
    reports = [e for e in recorder if e["event"] == "service.loop_blocked"]
    assert [e["service"] for e in reports if "time.sleep" in e["stack"]] == ["hog"]
    assert hog.status()["loop_blocked"] >= 1
    assert hog.status()["last_loop_block"]["seconds"] >= 0.2


# -- on the caller's loop: astart / astop / async with -------------------------------------------


def test_async_with_runs_async_services_on_the_callers_loop_and_threads_in_threads(
    recorder: Recorder,
) -> None:
    loop_ready = threading.Event()

    class NeedsTheLoop(Service):
        """Its setup() blocks until a coroutine on the loop runs: astart must not block it."""

        def setup(self) -> None:
            assert loop_ready.wait(5), "astart() blocked the event loop"

        def run(self) -> None:
            while not self.wait(30):
                pass

    async def main() -> tuple[Forever, threading.Thread | None]:
        service = Forever()
        sup = Supervisor([service, NeedsTheLoop()], shutdown_timeout=5)

        async def poke() -> None:
            await asyncio.sleep(0.01)
            loop_ready.set()

        poker = asyncio.create_task(poke())
        async with sup:
            await poker
            assert sup.wait_running(0)
            thread = service.thread
            assert not loop_threads()  # no loop thread of its own: the caller's loop
        return service, thread

    service, thread = asyncio.run(main())
    assert thread is threading.main_thread()
    assert service.calls == ["setup", "run", "teardown"]
    assert recorder.names("needs_the_loop")[-1] == "service.stopped"


def test_leaving_asyncio_run_without_astop_still_runs_teardown() -> None:
    service = Forever()
    sup = Supervisor([service], stop_at_exit=False)

    async def main() -> None:
        await sup.astart()  # and never astop(): asyncio.run() cancels the task on its way out

    asyncio.run(main())
    assert service.calls == ["setup", "run", "teardown"]
    assert service.state is ServiceState.STOPPED
    sup.stop()


def test_the_callers_loop_is_watched_too(recorder: Recorder) -> None:
    class Hog(AsyncService):
        loop_block_threshold = 0.05

        async def run(self) -> None:
            time.sleep(0.3)
            while not await self.wait(30):
                pass

    async def main() -> Hog:
        hog = Hog()
        sup = Supervisor([hog])
        async with sup:
            while hog.loop_blocked == 0:
                await asyncio.sleep(0.01)
        return hog

    hog = asyncio.run(asyncio.wait_for(main(), 10))
    assert "time.sleep" in hog.last_loop_block["stack"]  # type: ignore[index]


# -- traps ------------------------------------------------------------------------------------


def test_sync_hooks_on_async_classes_are_refused_at_class_definition() -> None:
    with pytest.raises(TypeError, match=r"Plain\.run must be `async def`.*asyncio.to_thread"):

        class Plain(AsyncService):
            def run(self) -> None:  # type: ignore[override]
                pass

    with pytest.raises(TypeError, match=r"SyncTick\.tick must be `async def`"):

        class SyncTick(AsyncPeriodicService):
            def tick(self) -> None:  # type: ignore[override]
                pass

    with pytest.raises(TypeError, match=r"AsyncState\.init_state must be a plain `def`"):

        class AsyncState(AsyncService):
            async def init_state(self) -> None:  # type: ignore[override]
                pass


def test_async_hooks_on_thread_classes_point_to_the_async_classes() -> None:
    with pytest.raises(TypeError, match=r"subclass bgservices\.AsyncPeriodicService"):

        class Ticking(PeriodicService):
            async def tick(self) -> None:  # type: ignore[override]
                pass

    with pytest.raises(TypeError, match=r"subclass bgservices\.AsyncService"):

        class Running(Service):
            async def run(self) -> None:  # type: ignore[override]
                pass


def test_async_options_are_validated_like_the_thread_versions() -> None:
    from bgservices import ConfigError

    with pytest.raises(ConfigError) as caught:
        Ticker(interval=0, loop_block_threshold=-1)
    assert {p.path for p in caught.value.problems} >= {"interval", "loop_block_threshold"}


def test_bgservices_types_shows_which_types_are_async(capsys: pytest.CaptureFixture[str]) -> None:
    @register("async_probe_for_types")
    class Probe(AsyncPeriodicService):
        async def tick(self) -> None:
            pass

    try:
        assert cli_main(["types"]) == 0
        lines = capsys.readouterr().out.splitlines()
        probe = next(line for line in lines if line.startswith("async_probe_for_types"))
        assert "(critical, async;" in probe
        assert any(line.startswith("memory_monitor  (daemon-safe;") for line in lines)
    finally:
        _types.pop("async_probe_for_types", None)


def test_async_types_come_from_the_one_registry_and_the_dict_config() -> None:
    from bgservices import ConfigError, from_config

    @register("async_probe_for_config")
    class Probe(AsyncPeriodicService):
        async def tick(self) -> None:
            pass

    try:
        config = {"services": {"probe": {"type": "async_probe_for_config", "interval": 0.01}}}
        sup = from_config(config)
        service = sup.get("probe", Probe)
        assert service.interval == 0.01 and service.loop_block_threshold == 0.1
        sup.start()
        assert sup.wait_running(5)
        assert sup.stop().clean
        bad = {"services": {"probe": {"type": "async_probe_for_config", "loop_block_threshold": 0}}}
        with pytest.raises(ConfigError, match="loop_block_threshold"):
            from_config(bad)
    finally:
        _types.pop("async_probe_for_config", None)


def test_an_abandoned_daemon_safe_task_does_not_hold_the_exit(tmp_path: Path) -> None:
    """A daemon-safe task that survives cancellation shares a non-daemon loop thread with a
    critical service: at exit it is left behind, as a daemon thread is, and the process ends."""
    app = App.script("aio_exit_app.py", "abandoned", str(tmp_path))
    app.wait_line("READY")
    code, out, err = app.finish(timeout=10)
    assert code == 0, err
    assert (tmp_path / "teardown").read_text() == "flushed"
    assert "DEAF CANCELLED" in out and "supervisor.abandoned" in out


def test_a_lease_on_an_async_service_is_refused_not_ignored(tmp_path: Path) -> None:
    from bgservices import ConfigError

    with pytest.raises(ConfigError, match="leases need a thread service"):
        Forever(lease={"path": str(tmp_path / "lock")})
