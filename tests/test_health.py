"""Health that tells the truth: verdicts from state, progress, errors, tick deadlines and a
service's own view; readiness; ``requires`` ordering at start and stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from bgservices import (
    ConfigError,
    LifecycleEvent,
    PeriodicService,
    Phase,
    Service,
    ServiceState,
    Supervisor,
)
from bgservices import supervisor as supervisor_module
from bgservices._clock import RealClock
from bgservices.config import from_config
from bgservices.health import HealthCheck, Verdict, deadline

from ._process import until


class Flaky(PeriodicService):
    """Ticks fail while ``broken`` is set."""

    interval = 0.01

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.broken = threading.Event()

    def tick(self) -> None:
        if self.broken.is_set():
            raise RuntimeError("upstream unavailable")


class Looper(Service):
    """A run() loop that heartbeats while ``beating`` is set, and otherwise hangs."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.beating = threading.Event()
        self.beating.set()

    def run(self) -> None:
        while not self.stopping:
            if self.beating.is_set():
                self.heartbeat()
                self.wait(0.01)
            else:
                self._stuck_in_io()

    def _stuck_in_io(self) -> None:
        while not self.beating.is_set() and not self.stopping:
            self.wait(0.01)


class CrashesOnCue(Service):
    """Raises from ``run()`` once ``crash`` is set, and is not restarted."""

    restart = "never"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.crash = threading.Event()

    def run(self) -> None:
        self.crash.wait(10)
        raise RuntimeError("boom")


class Idle(Service):
    journal: list[str] | None = None

    def run(self) -> None:
        while not self.wait(30):
            pass


def test_failing_ticks_degrade_then_fail_and_recover(make_supervisor, recorder) -> None:
    flaky = Flaky(name="flaky", degraded_after_errors=1, failing_after_errors=3)
    sup = make_supervisor(flaky)
    sup.start()
    assert sup.healthy
    flaky.broken.set()
    event = recorder.wait_for("service.health", health="failing")
    assert "failing ticks in a row" in " ".join(event["reasons"])
    assert event["previous"] == "degraded"  # degraded first, after one failure
    assert not sup.healthy
    report = sup.health()
    assert report["failing"] == ["flaky"] and report["services"]["flaky"]["health"] == "failing"
    flaky.broken.clear()
    recorder.wait_for("service.health", health="ok")
    assert sup.healthy


class _SlowToDescribe(RuntimeError):
    """Its message takes a while to build, as a traceback's source lines can (file reads)."""

    def __str__(self) -> str:
        time.sleep(0.2)  # the window in which a health verdict used to see a count, no error
        return "slow to describe"


class SlowError(PeriodicService):
    interval = 0.01
    failing_after_errors = 1

    def tick(self) -> None:
        raise _SlowToDescribe


def test_whoever_sees_a_failure_counted_sees_its_error(make_supervisor) -> None:
    service = SlowError(name="slow")
    sup = make_supervisor(service)
    errors_seen: list[dict[str, str] | None] = []
    judged = threading.Event()

    def on_event(event: Any) -> None:
        if event.event == "service.health" and event.fields.get("health") == "failing":
            errors_seen.append(service.last_error)
            judged.set()

    sup.add_listener(on_event)
    sup.start()
    assert judged.wait(5)
    assert errors_seen[0] is not None and errors_seen[0]["message"] == "slow to describe"


def test_a_daemon_service_failing_does_not_make_the_supervisor_unhealthy(make_supervisor) -> None:
    flaky = Flaky(name="flaky", daemon=False)
    background = Flaky(name="background", failing_after_errors=1)
    background.daemon = True
    sup = make_supervisor(flaky, background)
    background.broken.set()
    sup.start()
    assert background.wait_for_state(ServiceState.RUNNING, timeout=5)
    deadline = time.monotonic() + 5
    while background.consecutive_errors < 1 and time.monotonic() < deadline:
        background.wait(0.01)
    assert sup.health()["services"]["background"]["health"] == "failing"
    assert sup.healthy  # only critical services decide


def test_a_stalled_run_loop_is_failing_once_with_its_stack(make_supervisor, recorder) -> None:
    looper = Looper(name="looper", stall_after=0.2)
    sup = make_supervisor(looper)
    sup.start()
    assert sup.health()["services"]["looper"]["health"] == "ok"
    looper.beating.clear()
    stalled = recorder.wait_for("service.stalled", service="looper")
    assert "_stuck_in_io" in stalled["stack"]
    health = recorder.wait_for("service.health", service="looper")
    assert health["health"] == "failing"
    assert "no progress" in health["reasons"][0]
    assert not sup.healthy
    sup.health()  # asking again reports nothing new
    assert recorder.names("looper").count("service.stalled") == 1
    looper.beating.set()
    recorder.wait_for("service.health", service="looper", health="ok")
    assert sup.healthy


def test_a_tick_past_its_timeout_is_reported_and_failing_until_it_ends(
    make_supervisor, recorder
) -> None:
    release = threading.Event()

    class Slow(PeriodicService):
        interval = 0.01

        def tick(self) -> None:
            release.wait(10)

    slow = Slow(name="slow", tick_timeout=0.1)
    sup = make_supervisor(slow)
    sup.start()
    event = recorder.wait_for("service.tick_timeout", service="slow")
    assert "release.wait" in event["stack"]
    assert sup.health()["services"]["slow"]["health"] == "failing"
    assert not sup.healthy
    release.set()
    recorder.wait_for("service.health", service="slow", health="ok")
    assert recorder.names("slow").count("service.tick_timeout") == 1


def test_failed_is_failing_and_backoff_is_degraded(make_supervisor, recorder) -> None:
    gate = threading.Event()

    class Crashy(Service):
        restart = "on-failure"

        def run(self) -> None:
            if gate.is_set():
                raise RuntimeError("boom <b>")
            while not self.wait(30):
                pass

    crashy = Crashy(name="crashy", max_restarts=0)
    sup = make_supervisor(crashy)
    sup.start()
    gate.set()
    sup.restart("crashy")
    assert crashy.wait_for_state(ServiceState.FAILED, timeout=5)
    report = crashy.health_report()
    assert report.verdict is Verdict.FAILING and "boom <b>" in report.reasons[0]
    assert not sup.healthy


def test_check_health_is_the_services_own_view(make_supervisor) -> None:
    class Picky(Idle):
        def check_health(self) -> HealthCheck | None:
            return HealthCheck.degraded("queue backing up")

    class Broken(Idle):
        def check_health(self) -> HealthCheck | None:
            raise ValueError("bug")

    sup = make_supervisor(Picky(name="picky"), Broken(name="broken"))
    sup.start()
    services = sup.health()["services"]
    assert services["picky"]["health"] == "degraded"
    assert services["picky"]["reasons"] == ["queue backing up"]
    assert services["broken"]["health"] == "degraded"
    assert "raised" in services["broken"]["reasons"][0]
    assert sup.healthy  # degraded is not failing


def test_one_watchdog_thread_whatever_the_number_of_services(make_supervisor) -> None:
    sup = make_supervisor(*[Looper(name=f"l{i}", stall_after=60) for i in range(20)])
    sup.start()
    names = [t.name for t in threading.enumerate()]
    assert names.count("bgservices:watchdog") == 1
    watchdog = next(t for t in threading.enumerate() if t.name == "bgservices:watchdog")
    assert watchdog.daemon
    sup.stop()
    assert not watchdog.is_alive()


def test_the_watchdog_ends_while_nothing_is_due_and_a_change_brings_it_back(
    make_supervisor, recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor_module, "_WATCHDOG_LINGER", 0.05)  # not a whole second

    class Checked(CrashesOnCue):
        def check_health(self) -> None:  # a check of its own: judged by the watchdog
            return None

    later = Checked(name="later")
    sup = make_supervisor(later, Looper(name="quiet"))
    judged_in = _judging_threads(sup)
    sup.start()
    # no stall or tick deadline: once it has judged the start, nothing is due
    assert until(lambda: not _watchdogs(), timeout=5), "the watchdog outlived its work"
    later.crash.set()
    event = recorder.wait_for("service.health", service="later", health="failing")
    assert "boom" in str(event["reasons"])
    assert judged_in["later"] == "bgservices:watchdog"  # brought back for it
    assert not sup.healthy


def test_start_judges_what_nothing_is_due_for_itself_and_starts_no_watchdog(
    make_supervisor, recorder
) -> None:
    class NoConfig(Service):
        restart = "never"

        def setup(self) -> None:
            raise RuntimeError("no config")

    later = CrashesOnCue(name="later")
    sup = make_supervisor(NoConfig(name="broken"), later, Looper(name="quiet"), Idle(name="idle"))
    judged_in = _judging_threads(sup)
    sup.start()
    # judged by start() or by the service's own thread: no watchdog to start now or stop later
    recorder.wait_for("service.health", service="broken", health="failing")
    later.crash.set()
    recorder.wait_for("service.health", service="later", health="failing")
    assert judged_in["later"] == "bgservices:later"  # the thread that made the change
    assert sup._watchdog is None and not _watchdogs()
    assert sup.health()["services"]["quiet"]["health"] == "ok"


def test_a_service_with_a_check_or_a_deadline_of_its_own_is_judged_by_the_watchdog(
    make_supervisor, recorder
) -> None:
    judged_in: list[str] = []

    class Picky(Idle):
        def check_health(self) -> HealthCheck:
            judged_in.append(threading.current_thread().name)
            return HealthCheck.degraded("queue backing up")

    def patched_check() -> HealthCheck:
        judged_in.append(threading.current_thread().name)
        return HealthCheck.degraded("set on the instance")

    patched = Idle(name="patched")
    patched.check_health = patched_check  # type: ignore[method-assign]
    sup = make_supervisor(Picky(name="picky"), patched, Idle(name="idle"))
    sup.start()
    recorder.wait_for("service.health", service="picky", health="degraded")
    recorder.wait_for("service.health", service="patched", health="degraded")
    assert set(judged_in) == {"bgservices:watchdog"}  # user code: never in the caller of start()
    sup.stop()
    sup = make_supervisor(Idle(name="beats", stall_after=60))  # a deadline: a watchdog waits
    sup.start()
    assert _watchdogs()


def test_a_check_health_set_during_start_never_runs_in_the_thread_that_started(
    make_supervisor,
) -> None:
    # start() judges its idle services itself; a listener of one of those judgments (run by
    # start()'s thread) gives the others a check of their own: whichever are judged after
    # it run none of it there, and are handed to the watchdog instead
    judged_in: list[str] = []

    def check() -> HealthCheck:
        judged_in.append(threading.current_thread().name)
        return HealthCheck.degraded("set during start")

    class NoConfig(Service):
        restart = "never"

        def setup(self) -> None:
            raise RuntimeError("no config")

    others = [Idle(name=f"other{i}") for i in range(10)]

    def arm(event: Any) -> None:
        if event.event == "service.health" and event.service == "broken":
            for other in others:
                other.check_health = check  # type: ignore[method-assign]

    sup = make_supervisor(NoConfig(name="broken"), *others)
    sup.add_listener(arm)
    sup.start()
    assert all(other.check_health is check for other in others)
    assert "MainThread" not in judged_in


def test_a_check_health_set_on_a_periodic_instance_is_judged_after_its_ticks(
    make_supervisor, recorder
) -> None:
    class Ticks(PeriodicService):
        interval = 0.02

        def tick(self) -> None:
            pass

    ticks = Ticks(name="ticks")
    sup = make_supervisor(ticks)
    sup.start()
    ticks.check_health = lambda: HealthCheck.failing("set on the instance")  # type: ignore[method-assign]
    recorder.wait_for("service.health", service="ticks", health="failing")


def test_a_watchdog_round_looks_only_at_what_changed(
    make_supervisor, recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked: list[str] = []

    def counted(service: Service) -> float | None:
        looked.append(service.name)
        return deadline(service)

    monkeypatch.setattr(supervisor_module, "deadline", counted)
    idle = [Idle(name=f"idle{i}", stall_after=60) for i in range(50)]  # each has a deadline
    flaky = Flaky(name="flaky", degraded_after_errors=1)
    sup = make_supervisor(*idle, flaky)
    sup.start()
    assert until(lambda: set(looked) >= {s.name for s in idle}, timeout=5)  # the first round
    looked.clear()
    flaky.broken.set()
    recorder.wait_for("service.health", service="flaky", health="degraded")
    assert set(looked) == {"flaky"}  # not a pass over the fifty others, a minute from due


@pytest.mark.parametrize("clock", [None, RealClock()], ids=["default", "a RealClock of its own"])
def test_services_ending_one_after_another_share_one_watchdog(
    make_supervisor, monkeypatch: pytest.MonkeyPatch, clock: RealClock | None
) -> None:
    monkeypatch.setattr(supervisor_module, "_WATCHDOG_LINGER", 30.0)  # longer than the test
    made = []
    new_watchdog = Supervisor._new_watchdog

    def counted(sup: Supervisor) -> threading.Thread:
        made.append(sup)
        return new_watchdog(sup)

    monkeypatch.setattr(Supervisor, "_new_watchdog", counted)

    class EndsOnCue(Service):
        restart = "never"

        def init_state(self) -> None:
            super().init_state()
            self.cue = threading.Event()

        def run(self) -> None:
            self.cue.wait(10)

        def check_health(self) -> None:  # a check of its own: its end is the watchdog's
            return None

    services = [EndsOnCue(name=f"e{i}") for i in range(20)]
    sup = make_supervisor(*services, Idle(name="idle"), clock=clock)
    sup.start()
    for service in services:  # one end at a time, each after the last was reported
        service.cue.set()
        assert service.wait_for_state(ServiceState.STOPPED, timeout=5)
    assert len(made) == 1  # one watchdog saw them all: none was started per end


def _judging_threads(sup: Supervisor) -> dict[str, str]:
    """Service name -> the thread its last ``service.health`` event came from."""
    threads: dict[str, str] = {}

    def note(event: LifecycleEvent) -> None:
        if event.event == "service.health":
            threads[event.service] = threading.current_thread().name

    sup.add_listener(note)
    return threads


def _watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bgservices:watchdog"]


# -- readiness and dependencies ---------------------------------------------------------


class Loads(Service):
    """Ready only once ``loaded`` is set (like a first cache load)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.loaded = threading.Event()

    @property
    def ready(self) -> bool:
        return super().ready and self.loaded.is_set()

    def run(self) -> None:
        while not self.wait(30):
            pass


def test_a_dependent_starts_once_what_it_requires_is_ready(make_supervisor) -> None:
    base = Loads(name="base")
    dependent = Idle(name="dependent", requires=["base"])
    sup = make_supervisor(dependent, base, ready_timeout=10)
    starter = threading.Thread(target=sup.start)
    starter.start()
    assert base.wait_for_state(ServiceState.RUNNING, timeout=5)
    assert not sup.wait_ready(0.05)  # not ready: base has not loaded, dependent is waiting
    assert dependent.state is ServiceState.NEW
    base.loaded.set()
    base._changed()  # what a service does when its readiness changes outside a tick
    starter.join(5)
    assert dependent.state is ServiceState.RUNNING
    assert sup.wait_ready(5)
    assert sup.ready


def test_a_dependent_whose_requirement_fails_is_not_started(make_supervisor) -> None:
    class Dies(Service):
        restart = "never"

        def setup(self) -> None:
            raise RuntimeError("no database")

        def run(self) -> None:
            pass

    dependent = Idle(name="dependent", requires=["db"])
    sup = make_supervisor(Dies(name="db"), dependent, ready_timeout=60)
    sup.start()  # returns at once: the requirement failed, nothing to wait for
    assert dependent.state is ServiceState.FAILED
    # it says why, not that it timed out
    assert dependent.last_error["message"] == "not started: required service(s) 'db' (failed)"
    assert not sup.wait_ready(5)  # returns at once: readiness cannot be reached


def test_wait_ready_returns_false_as_soon_as_a_service_fails(make_supervisor) -> None:
    block = threading.Event()

    class FailsLater(Service):
        restart = "never"

        def run(self) -> None:
            block.wait(10)
            raise RuntimeError("gone")

    sup = make_supervisor(Loads(name="never_ready"), FailsLater(name="fails"))
    sup.start()
    threading.Timer(0.05, block.set).start()
    began = time.monotonic()
    assert not sup.wait_ready(30)
    assert time.monotonic() - began < 10


def test_a_stop_while_a_dependent_waits_launches_nothing_more(make_supervisor) -> None:
    base = Loads(name="base")
    dependent = Idle(name="dependent", requires=["base"])
    sup = make_supervisor(base, dependent, ready_timeout=30)
    starter = threading.Thread(target=sup.start)
    starter.start()
    assert base.wait_for_state(ServiceState.RUNNING, timeout=5)
    sup.request_stop()
    starter.join(5)
    assert not starter.is_alive()
    assert sup.wait_stopped(5)
    assert dependent.state is ServiceState.NEW


@pytest.mark.parametrize(
    ("graph", "message", "path"),
    [
        ({"a": ["nope"]}, "unknown service 'nope'", "a.requires[0]"),
        ({"a": ["b"], "b": ["a"]}, "dependency cycle: a -> b -> a", "a.requires"),
        ({"a": ["a"]}, "dependency cycle: a -> a", "a.requires"),
    ],
)
def test_unknown_names_and_cycles_are_config_errors(graph, message, path) -> None:
    with pytest.raises(ConfigError) as caught:
        Supervisor([Idle(name=n, requires=r) for n, r in graph.items()])
    assert [(p.path, p.message) for p in caught.value.problems] == [(path, message)]
    config = {
        "services": {n: {"type": f"{__name__}:Idle", "requires": r} for n, r in graph.items()}
    }
    with pytest.raises(ConfigError) as caught:
        from_config(config)
    assert [(p.path, p.message) for p in caught.value.problems] == [(f"services.{path}", message)]


def test_add_refuses_a_cycle_and_an_unknown_name_once_running(make_supervisor) -> None:
    sup = make_supervisor(Idle(name="a"))
    with pytest.raises(ConfigError, match="cycle"):
        sup.add(Idle(name="b", requires=["b"]))
    sup.start()
    with pytest.raises(ConfigError, match="unknown service 'zzz'"):
        sup.add(Idle(name="c", requires=["zzz"]))
    assert [s.name for s in sup] == ["a"]


# -- stop: concurrent where independent, ordered along requires ---------------------------


class SlowTeardown(Service):
    journal: list[str] | None = None

    def run(self) -> None:
        while not self.wait(30):
            pass

    def teardown(self) -> None:
        time.sleep(0.5)  # the work a teardown does: flushing, closing
        if self.journal is not None:
            self.journal.append(self.name)


def test_independent_services_stop_concurrently(make_supervisor) -> None:
    services = [SlowTeardown(name=f"s{i}") for i in range(10)]
    sup = make_supervisor(*services)
    sup.start()
    report = sup.stop()
    assert report.clean and len(report.stopped) == 10
    assert report.elapsed < 1.5  # one at a time would take 5 s


def test_a_chain_stops_in_order(make_supervisor) -> None:
    journal: list[str] = []
    services = [
        SlowTeardown(name="db"),
        SlowTeardown(name="cache", requires=["db"]),
        SlowTeardown(name="api", requires=["cache"]),
        SlowTeardown(name="side"),
    ]
    for service in services:
        service.journal = journal
    sup = make_supervisor(*services)
    sup.start()
    assert sup.stop().clean
    assert [n for n in journal if n != "side"] == ["api", "cache", "db"]
    assert journal.index("side") < journal.index("cache")  # side stopped alongside api


class _WatchdogClock(RealClock):
    """The real clock, noting whether the watchdog is asleep in its wait: set under the wait's
    lock, by the wake-up check the watchdog makes before each sleep."""

    def __init__(self) -> None:
        self.watchdog_asleep = False

    def wait_for(
        self, cond: threading.Condition, predicate: Callable[[], bool], timeout: float | None
    ) -> bool:
        if threading.current_thread().name != "bgservices:watchdog":
            return cond.wait_for(predicate, timeout)

        def noted() -> bool:
            woken = predicate()
            self.watchdog_asleep = not woken
            return woken

        return cond.wait_for(noted, timeout)


def test_the_watchdog_sleeps_while_nothing_changes(make_supervisor) -> None:
    class Quiet(Service):
        def run(self) -> None:
            while not self.wait(30):
                pass

    clock = _WatchdogClock()
    services = [Quiet(name=f"q{i}", stall_after=60) for i in range(20)]
    sup = make_supervisor(*services, clock=clock)
    rounds: list[float] = []
    judge = sup._watch_round

    def counted(*args: Any) -> Any:
        rounds.append(time.monotonic())
        return judge(*args)

    sup._watch_round = counted
    sup.start()
    assert sup.wait_ready(5)

    def judged() -> bool:  # the start-up changes: none is left, and the watchdog is asleep
        with sup._watch_wake:
            return clock.watchdog_asleep and not sup._dirty

    assert until(judged, timeout=5)
    seen = len(rounds)
    time.sleep(0.3)  # watching for activity that must not happen: no poll, no busy loop
    assert len(rounds) == seen, rounds


def test_start_refuses_a_requirement_that_was_never_added(make_supervisor) -> None:
    sup = make_supervisor()
    sup.add(Idle(name="a", requires=["b"]))  # b may still be added before start()
    with pytest.raises(ConfigError, match="unknown service 'b'") as caught:
        sup.start()
    assert caught.value.problems[0].path == "a.requires[0]"
    assert sup.phase.value == "idle"
    sup.add(Idle(name="b"))
    sup.start()
    assert sup.wait_ready(5)


def test_no_verdict_is_reported_once_a_stop_cut_the_start_short(make_supervisor, recorder) -> None:
    in_setup, go_on = threading.Event(), threading.Event()

    class NoConfig(Service):
        restart = "never"

        def setup(self) -> None:
            raise RuntimeError("no config")

    class SlowSetup(Idle):
        def setup(self) -> None:
            in_setup.set()
            go_on.wait(10)

    sup = make_supervisor(NoConfig(name="broken"), SlowSetup(name="slow"))
    starter = threading.Thread(target=sup.start)
    starter.start()
    assert in_setup.wait(5)
    stopper = threading.Thread(target=sup.stop)
    stopper.start()
    assert until(lambda: sup.phase is Phase.STOPPING, timeout=5)
    go_on.set()
    starter.join(10)
    stopper.join(10)
    assert not starter.is_alive() and not stopper.is_alive()
    assert recorder.matching("service.health") == []  # health no longer mattered


def test_a_judgment_overtaken_by_a_newer_one_records_and_reports_nothing(
    make_supervisor, recorder
) -> None:
    entered, go_on = threading.Event(), threading.Event()

    class SlowCheck(Idle):
        def check_health(self) -> HealthCheck:
            if threading.current_thread().name == "slow-judge":
                entered.set()
                go_on.wait(10)  # what it saw is stale by the time it returns
                return HealthCheck.failing("stale")
            return HealthCheck.ok()

    sup = make_supervisor(SlowCheck(name="slow"))
    sup.start()
    slow = threading.Thread(target=sup.health, name="slow-judge")
    slow.start()
    assert entered.wait(5)
    assert sup.health()["services"]["slow"]["health"] == "ok"  # a judgment begun later
    go_on.set()
    slow.join(10)
    assert sup._verdicts["slow"] is Verdict.OK
    assert recorder.matching("service.health", service="slow") == []  # no flip to "stale"
