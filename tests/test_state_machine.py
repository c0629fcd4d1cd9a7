"""Hypothesis stateful test: any sequence of start, stop, restart and crash keeps the invariants.

- a stopped service never runs;
- a service is never run by two threads at once;
- a FAILED service is not restarted (until someone explicitly restarts or starts it);
- every state change is in ``state.TRANSITIONS`` (the suite runs with BGSERVICES_STRICT=1, and
  ``state.VIOLATIONS`` must stay empty), also when start, stop, add, remove, restart and
  request_stop run concurrently from several threads, from listeners and from services' own
  threads;
- after a stop, nothing is left running and no operation raised anything undocumented.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bgservices import Backoff, LifecycleEvent, Phase, Service, ServiceState, Supervisor, state

NAMES = ["p0", "p1", "p2"]


class Probe(Service):
    """Counts its runs and how many threads run it at once; crashes on request."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.runs = 0
        self.active = 0
        self.max_active = 0
        self.crash = threading.Event()
        self.crashed = threading.Event()
        self.crashed_in_run = 0  # which run last crashed: it stays RUNNING while unwinding
        self._count_lock = threading.Lock()
        self.own_actions: list[Callable[[], None]] = []  # run from the service's own thread

    def run(self) -> None:
        with self._count_lock:
            self.runs += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            while not self.wait(0.005):
                while self.own_actions:
                    attempt(self.own_actions.pop())
                if self.crash.is_set():
                    self.crash.clear()
                    self.crashed_in_run = self.runs
                    self.crashed.set()
                    raise RuntimeError("crash on request")
        finally:
            with self._count_lock:
                self.active -= 1


#: What an operation may raise, by design, when it meets another one halfway.
DEFINED = (RuntimeError, KeyError, ValueError)
unexpected: list[BaseException] = []


def attempt(action: Callable[[], object]) -> None:
    """Run *action*; a documented refusal is fine, anything else is recorded as a bug."""
    try:
        action()
    except DEFINED:
        pass
    except BaseException as exc:
        unexpected.append(exc)


OPERATIONS = ["start", "stop", "request_stop", "restart", "remove_add"]


class SupervisorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.probes = {name: Probe(name=name, max_restarts=2) for name in NAMES}
        self.sup = Supervisor(
            self.probes.values(), shutdown_timeout=5, backoff=Backoff(initial=0.001, maximum=0.004)
        )
        self.pending_in_listener: list[Callable[[], None]] = []
        self.sup.add_listener(self.meddle)
        unexpected.clear()
        self.frozen: dict[str, int] = {}  # runs of stopped services, which must not run again
        self.failed_runs: dict[str, int] = {}  # runs of FAILED services when first seen so

    @rule()
    def start(self) -> None:
        was_running = self.sup.running
        self.sup.start()
        if not was_running:
            self.frozen.clear()

    @rule()
    def stop(self) -> None:
        report = self.sup.stop()
        assert report.clean
        self.frozen = {name: probe.runs for name, probe in self.probes.items()}

    @precondition(lambda self: self.sup.running)
    @rule(name=st.sampled_from(NAMES))
    def restart(self, name: str) -> None:
        self.sup.restart(name)
        self.frozen.pop(name, None)

    @precondition(lambda self: self.sup.running)
    @rule(name=st.sampled_from(NAMES))
    def crash(self, name: str) -> None:
        probe = self.probes[name]
        if probe.state is ServiceState.RUNNING and probe.crashed_in_run != probe.runs:
            probe.crashed.clear()
            probe.crash.set()
            # Wait for the crash itself: the states it passes through may be too brief to see.
            assert probe.crashed.wait(5)
            if probe.wait_for_state(ServiceState.FAILED, timeout=0):
                self.frozen[name] = probe.runs

    def meddle(self, event: LifecycleEvent) -> None:
        """A listener that runs a queued operation from inside an event."""
        if self.pending_in_listener and event.event.startswith("service."):
            with contextlib.suppress(IndexError):
                attempt(self.pending_in_listener.pop())

    def operation(self, kind: str, name: str) -> Callable[[], None]:
        sup, probe = self.sup, self.probes[name]

        def remove_add() -> None:
            sup.remove(name)
            sup.add(probe)

        return {
            "start": sup.start,
            "stop": lambda: sup.stop(),
            "request_stop": sup.request_stop,
            "restart": lambda: sup.restart(name),
            "remove_add": remove_add,
        }[kind]

    @rule(
        batch=st.lists(
            st.tuples(
                st.sampled_from(OPERATIONS),
                st.sampled_from(NAMES),
                st.sampled_from(["thread", "listener", "service"]),
            ),
            min_size=2,
            max_size=5,
        )
    )
    def concurrently(self, batch: list[tuple[str, str, str]]) -> None:
        """Operations at once: from threads, from a listener, and from services' own threads."""
        threads = []
        go = threading.Barrier(sum(where == "thread" for _, _, where in batch) + 1)
        for kind, name, where in batch:
            action = self.operation(kind, name)
            if where == "listener":
                self.pending_in_listener.append(action)
            elif where == "service":
                self.probes[name].own_actions.append(action)
            else:
                threads.append(threading.Thread(target=lambda a=action: (go.wait(5), attempt(a))))
        for thread in threads:
            thread.start()
        go.wait(5)
        for thread in threads:
            thread.join(20)
            assert not thread.is_alive(), "an operation never returned"
        self.pending_in_listener.clear()
        for probe in self.probes.values():
            probe.own_actions.clear()
        self.quiesce()

    def quiesce(self) -> None:
        """Stop until nothing runs: an action still in flight (a start from a service's own
        thread) may have started things again. The model then knows where it is: stopped."""
        for _ in range(5):
            assert self.sup.stop().in_progress is False or self.sup.wait_stopped(20)
            assert self.sup.wait_stopped(20), "a stop never ended"
            for probe in self.probes.values():  # nothing left running unasked
                if probe.thread is not None:
                    probe.thread.join(10)
                    assert not probe.thread.is_alive(), f"{probe.name} runs after the stop"
            if self.sup.phase in (Phase.IDLE, Phase.STOPPED):
                break
        else:
            raise AssertionError("the supervisor kept being started again")
        self.frozen = {name: probe.runs for name, probe in self.probes.items()}
        self.failed_runs.clear()

    @invariant()
    def only_allowed_transitions_and_no_undocumented_errors(self) -> None:
        assert not state.VIOLATIONS, state.VIOLATIONS
        assert not unexpected, unexpected

    @invariant()
    def never_two_threads_at_once(self) -> None:
        assert all(p.max_active <= 1 for p in self.probes.values())

    @invariant()
    def stopped_services_do_not_run_again(self) -> None:
        for name, runs in self.frozen.items():
            probe = self.probes[name]
            if probe.state in (ServiceState.STOPPED, ServiceState.FAILED, ServiceState.NEW):
                assert probe.runs == runs, f"{name} ran after it {probe.state.value}"

    @invariant()
    def failed_services_stay_down(self) -> None:
        for name, probe in self.probes.items():
            if probe.state is ServiceState.FAILED:
                assert probe.runs == self.failed_runs.setdefault(name, probe.runs)
            else:
                self.failed_runs.pop(name, None)

    def teardown(self) -> None:
        self.sup.stop()


SupervisorMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=20, deadline=None
)
test_supervisor_state_machine = SupervisorMachine.TestCase
