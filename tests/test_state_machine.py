"""Hypothesis stateful test: any sequence of start, stop, restart and crash keeps the invariants.

- a stopped service never runs;
- a service is never run by two threads at once;
- a FAILED service is not restarted (until someone explicitly restarts or starts it).
"""

from __future__ import annotations

import threading

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bgservices import Backoff, Service, ServiceState, Supervisor

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

    def run(self) -> None:
        with self._count_lock:
            self.runs += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            while not self.wait(0.005):
                if self.crash.is_set():
                    self.crash.clear()
                    self.crashed_in_run = self.runs
                    self.crashed.set()
                    raise RuntimeError("crash on request")
        finally:
            with self._count_lock:
                self.active -= 1


class SupervisorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.probes = {name: Probe(name=name, max_restarts=2) for name in NAMES}
        self.sup = Supervisor(
            self.probes.values(), shutdown_timeout=5, backoff=Backoff(initial=0.001, maximum=0.004)
        )
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
