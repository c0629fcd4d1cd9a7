"""``Supervisor``: starts services in order, restarts them by policy, stops them in reverse.

Daemon-safe services run in daemon threads and get a short, bounded grace at stop; critical
services run in non-daemon threads and are waited for within the shutdown deadline, so their
teardown runs on every graceful exit path, including the main thread simply returning.

The supervisor's own life is one ``Phase``; every operation (``start``, ``stop``, ``add``,
``remove``, ``restart``, ``request_stop``) has a defined result in every phase, from any
thread, listeners and services' own threads included.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from . import _deps, _exit
from ._clock import REAL_CLOCK, Clock, RealClock
from ._condition import LeanCondition, join
from ._courier import Courier
from ._deadlines import LINGER as _WATCHDOG_LINGER
from ._deadlines import Deadlines
from ._logging import LEVELS, emit
from ._saferepr import safe_repr
from ._signals import SignalHandlers, deferring, force_exit, from_signal
from ._thread_stack import MAX_STACK_SIZE, default_stack, size_problem, stack_size
from .backoff import Backoff
from .errors import ConfigError, Problem
from .health import ServiceHealth, Verdict, deadline, evaluate, up_and_ready
from .options import option, validate_options
from .service import Service, in_service_thread
from .state import LifecycleEvent, ServiceState

if TYPE_CHECKING:
    from ._loop import Loops

__all__ = ["EXIT_STRAGGLER", "Phase", "StopReport", "Supervisor", "SupervisorSettings"]

#: Exit code when a critical service still runs past the deadline at interpreter exit.
EXIT_STRAGGLER = 70

Listener = Callable[[LifecycleEvent], Any]
_S = TypeVar("_S", bound=Service)
_EVENTS = logging.getLogger("bgservices.supervisor")
_DETAILED = 10  # late services reported one by one, with their stack; the rest together
# A stop keeps at most this many thread services of a wave woken and not yet ended: a
# thousand woken at once queue for the GIL, and the kernel schedules each of them meanwhile.
_STOP_WINDOW = 32
_WINDOW_WAIT = 0.005  # the oldest still running after this doubles the window
_LISTENER_WAIT = 0.1  # a stop waits this long for a listener, then goes on without it
_HINTS = random.Random()  # for _any_running: its own generator, never the application's

_SHUTDOWN_TIMEOUT = 10.0
_DAEMON_GRACE = 0.5
_FAILURE_POLICY: Literal["isolate", "shutdown"] = "isolate"
_STOP_AT_EXIT = True
_READY_TIMEOUT = 60.0
#: States in which a service counts as up: a standby waits for a lease another instance holds.
_UP = frozenset({ServiceState.RUNNING, ServiceState.STANDBY})


class SupervisorSettings:
    """The ``supervisor`` section: the keyword options of ``Supervisor``."""

    shutdown_timeout: float = option(
        default=_SHUTDOWN_TIMEOUT, gt=0, help="Seconds to stop critical services."
    )
    daemon_grace: float = option(
        default=_DAEMON_GRACE, ge=0, help="Seconds daemon-safe services get at stop."
    )
    failure_policy: Literal["isolate", "shutdown"] = option(
        default=_FAILURE_POLICY,
        help="isolate: others go on; shutdown: a FAILED service stops everything.",
    )
    stop_at_exit: bool = option(
        default=_STOP_AT_EXIT, help="Stop gracefully when the main thread finishes."
    )
    ready_timeout: float = option(
        default=_READY_TIMEOUT,
        gt=0,
        help="Seconds a service waits at start for the services it requires to be ready.",
    )
    thread_stack_size: int | None = option(
        default=None,
        ge=0,
        le=MAX_STACK_SIZE,
        help="Bytes of stack per service thread (>= 32768; 0: the platform's default; "
        "unset: unchanged). Set process-wide for the instant each thread starts.",
    )


class Phase(enum.Enum):
    """Where a supervisor is in its life. STOPPED can be started again."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class StopReport:
    """What ``stop()`` achieved.

    *stragglers* are critical services still running past the deadline: a problem.
    *abandoned* are daemon-safe services still running after their grace: allowed, as they
    are best effort, and reported so that nobody wonders.
    """

    stopped: tuple[str, ...] = ()
    stragglers: tuple[str, ...] = ()
    abandoned: tuple[str, ...] = ()
    elapsed: float = 0.0
    #: True when this call did not do the stop (another thread, or this one, is doing it).
    in_progress: bool = False
    #: ``time.monotonic()`` at which the stop's last wait ended; a later wait ends there too.
    deadline: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.stragglers and not self.in_progress


@dataclass
class _StopSummary:
    """What one stop found late, as an event's fields and as the ``StopReport``."""

    services: list[Service]
    late: list[Service]
    begun: float
    deadline: float

    def names(self, *, daemon: bool) -> tuple[str, ...]:
        return tuple(s.name for s in self.late if bool(s.daemon) is daemon)

    def fields(self) -> dict[str, Any]:
        return {
            "services": len(self.services),
            "elapsed": round(time.monotonic() - self.begun, 4),
            "stragglers": list(self.names(daemon=False)),
            "abandoned": list(self.names(daemon=True)),
        }

    def report(self) -> StopReport:
        return StopReport(
            stopped=tuple(s.name for s in self.services if s not in self.late),
            stragglers=self.names(daemon=False),
            abandoned=self.names(daemon=True),
            elapsed=time.monotonic() - self.begun,
            deadline=self.deadline,
        )


class Supervisor:
    """Runs services in threads of the right kind and stops them cleanly.

    >>> with Supervisor([MyService()]) as sup:   # doctest: +SKIP
    ...     sup.wait_running(timeout=5)
    """

    def __init__(
        self,
        services: Iterable[Service] = (),
        *,
        shutdown_timeout: float = _SHUTDOWN_TIMEOUT,
        daemon_grace: float = _DAEMON_GRACE,
        failure_policy: Literal["isolate", "shutdown"] = _FAILURE_POLICY,
        stop_at_exit: bool = _STOP_AT_EXIT,
        thread_stack_size: int | None = None,
        ready_timeout: float = _READY_TIMEOUT,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
    ) -> None:
        settings, problems = validate_options(
            SupervisorSettings,
            {
                "shutdown_timeout": shutdown_timeout,
                "daemon_grace": daemon_grace,
                "failure_policy": failure_policy,
                "stop_at_exit": stop_at_exit,
                "thread_stack_size": thread_stack_size,
                "ready_timeout": ready_timeout,
            },
            resolve=None,
        )
        stack_problem = None if problems else size_problem(settings["thread_stack_size"])
        if stack_problem:
            problems.append(Problem("thread_stack_size", stack_problem))
        if problems:
            raise ConfigError(problems)
        self.shutdown_timeout: float = settings["shutdown_timeout"]
        self.daemon_grace: float = settings["daemon_grace"]
        self.failure_policy: Literal["isolate", "shutdown"] = settings["failure_policy"]
        self.stop_at_exit: bool = settings["stop_at_exit"]
        #: Stack of each service thread; None leaves ``threading.stack_size()`` alone.
        self.thread_stack_size: int | None = settings["thread_stack_size"]
        self.ready_timeout: float = settings["ready_timeout"]
        self.backoff = backoff or Backoff()
        #: What services read and sleep on; ``bgservices.testing.FakeClock`` in tests.
        self.clock: Clock = clock or REAL_CLOCK
        self._services: dict[str, Service] = {}
        #: Copied on write, so that events are dispatched without a lock.
        self._listeners: tuple[Listener, ...] = ()
        self._init_runtime()
        services = list(services)
        for service in services:
            if not isinstance(service, Service):
                raise TypeError(f"expected a Service, got {type(service).__name__}")
        problems = _deps.problems({s.name: s.requires for s in services})
        if problems:
            raise ConfigError(problems)
        for service in services:
            self._add(service, checked=True)
        _exit.remember(self)

    def _init_runtime(self) -> None:
        # _lock guards _phase, _services, _launching, _listeners (writes), _report, _stopper,
        # _wake and _in_run; _changed (on the same lock) wakes whoever waits for a phase or a
        # service; _watch_wake (the same lock again) wakes the watchdog alone.
        self._lock = threading.RLock()
        self._changed = LeanCondition(self._lock)
        self._watch_wake = LeanCondition(self._lock)
        # services between their launch's two locked steps, and the thread launching each
        self._launching: dict[str, threading.Thread] = {}
        self._phase = Phase.IDLE
        self._report: StopReport | None = None
        self._stopper: threading.Thread | None = None  # the thread doing the current stop
        self._stop_deadline = 0.0
        # the exit hook's thread and when it must be done; events of that thread and of the
        # stopper reach listeners through the courier, never held past those deadlines
        self._exit_hook: tuple[threading.Thread, float] | None = None
        self._courier: Courier[LifecycleEvent] = Courier(self._deliver)
        self._wake = False  # run() should stop and return
        self._in_run = False
        self._failure_shutdown = False
        self._signals: SignalHandlers | None = None
        self._loops: Loops | None = None  # where async services run (see the asyncio section)
        # Health: services changed since the watchdog last looked (under _lock), and the last
        # verdict and overrun reported for each (under _health_lock: health() judges too),
        # with the ticket of the judgment that recorded each verdict (see _judge).
        self._dirty: set[str] = set()
        self._watch_generation = 0
        self._watchdog: threading.Thread | None = None
        self._health_lock = threading.Lock()
        self._verdicts: dict[str, Verdict] = {}
        self._recorded_by: dict[str, int] = {}
        self._tickets = itertools.count()
        self._overruns_reported: dict[str, float] = {}
        self._running_hint: Service | None = None  # see _any_running

    # -- services ------------------------------------------------------------------------

    def add(self, service: Service) -> Service:
        """Add *service*; if the supervisor is starting or running, start it now, once what
        it ``requires`` is ready (it is FAILED if that is not so within ``ready_timeout``)."""
        if not isinstance(service, Service):
            raise TypeError(f"expected a Service, got {type(service).__name__}")
        return self._add(service, checked=False)

    def _add(self, service: Service, *, checked: bool) -> Service:
        """``add()``; *checked*: the ``requires`` graph was checked with *service* in it."""
        with self._lock:
            if service.name in self._services:
                raise ValueError(f"a service named {service.name!r} is already supervised")
            if service.requires and not checked:  # with none: no cycle, no unknown name
                graph = {s.name: s.requires for s in self._services.values()}
                graph[service.name] = service.requires
                problems = _deps.problems(graph, unknown=False)
                if self._phase in (Phase.STARTING, Phase.RUNNING):  # later adds may name it
                    problems += _deps.unknown_names(service.name, service.requires, graph)
                if problems:
                    raise ConfigError(problems)
            service._claim(self)
            self._services[service.name] = service
        if self._await_requirements(service):
            self._launch(service)
        return service

    def remove(self, name: str) -> Service:
        """Stop the service called *name* (within ``shutdown_timeout``) and forget it.

        It is forgotten first, so that nothing relaunches it meanwhile. ``RuntimeError`` if it
        does not stop in time: then it is supervised again, so that the exit still waits for it.
        """
        with self._lock:
            service = self[name]
            del self._services[name]
            self._changed.notify_all()
        try:
            self._stop_one(service)
        except RuntimeError:
            with self._lock:
                self._services.setdefault(name, service)
            raise
        service._claim(None)
        return service

    def restart(self, name: str) -> None:
        """Stop the service called *name* and start it again in a new thread.

        ``RuntimeError`` unless the supervisor is starting or running, or if a stop of the
        supervisor began meanwhile (then the service stays stopped). Safe to call from several
        threads, from a listener or from a service: concurrent restarts launch it once.
        """
        with self._lock:
            if self._phase not in (Phase.STARTING, Phase.RUNNING):
                raise RuntimeError(f"cannot restart: the supervisor is {self._phase.value}")
            service = self[name]
        self._stop_one(service)
        if not self._launch(service) and self._phase not in (Phase.STARTING, Phase.RUNNING):
            raise RuntimeError("cannot restart: the supervisor began stopping")

    def __getitem__(self, name: str) -> Service:
        try:
            return self._services[name]
        except KeyError:
            raise KeyError(f"no service named {name!r}") from None

    @overload
    def get(self, name: str) -> Service: ...

    @overload
    def get(self, name: str, kind: type[_S]) -> _S: ...

    def get(self, name: str, kind: type[Service] = Service) -> Service:
        """The service called *name*, typed as *kind*: ``sup.get("warm", CacheWarmer)``.

        ``KeyError`` if there is none; ``TypeError`` if it is not a *kind*.
        """
        service = self[name]
        if not isinstance(service, kind):
            raise TypeError(
                f"service {name!r} is a {type(service).__qualname__}, not a {kind.__qualname__}"
            )
        return service

    def __iter__(self) -> Iterator[Service]:
        return iter(list(self._services.values()))

    def __len__(self) -> int:
        return len(self._services)

    # -- status --------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def running(self) -> bool:
        return self._phase is Phase.RUNNING

    @property
    def healthy(self) -> bool:
        """True while running with no critical service failing (see ``health()``)."""
        return self._phase is Phase.RUNNING and not any(
            r.critical and r.verdict is Verdict.FAILING for r in self._health_reports()
        )

    @property
    def ready(self) -> bool:
        """True while running with every service ready (``Service.ready``), or in STANDBY."""
        return self._phase is Phase.RUNNING and all(up_and_ready(s) for s in self)

    def health(self) -> dict[str, Any]:
        """The whole health report: ``healthy``, ``ready``, and per service its verdict
        (``ok | degraded | failing``), reasons, readiness and heartbeat age.

        ``healthy`` is true only while running with no critical service failing. Judged
        now, from figures the services keep; a changed verdict is also reported as a
        ``service.health`` event.
        """
        reports = self._health_reports()
        running = self._phase is Phase.RUNNING
        failing = [r.name for r in reports if r.critical and r.verdict is Verdict.FAILING]
        return {
            "phase": self._phase.value,
            "healthy": running and not failing,
            "ready": running and all(r.ready for r in reports),
            "failing": failing,
            "not_ready": [r.name for r in reports if not r.ready],
            "services": {r.name: r.as_dict() for r in reports},
        }

    def _health_reports(self) -> list[ServiceHealth]:
        return [self._judge(s) for s in self]

    def _judge(self, service: Service, *, own: bool = True) -> ServiceHealth:
        """Judge *service*; report a changed verdict, a new stall or a new tick overrun.

        Several threads judge (the watchdog, ``health()`` callers, a thread that made a
        change): a judgment overtaken by one begun after it (a slow ``check_health()``)
        records and reports nothing, so a stale verdict never replaces a newer one.
        """
        ticket = next(self._tickets)
        report = evaluate(service, own=own)
        name = service.name
        with self._health_lock:
            if self._recorded_by.get(name, -1) > ticket:
                return report
            self._recorded_by[name] = ticket
            previous = self._verdicts.get(name, Verdict.OK)
            self._verdicts[name] = report.verdict
            new_stall = report.stalled and not service._stall_reported
            service._stall_reported = report.stalled
            began = report.overrun_since  # the overrunning tick, as judged: reported once
            new_overrun = began is not None and self._overruns_reported.get(name) != began
            if began is not None:
                self._overruns_reported[name] = began
        if new_stall:
            service._emit("service.stalled", "warning", stall_after=service.stall_after,
                          stack=service._stack())  # fmt: skip
        if new_overrun:
            stack = service._stack()
            limit = getattr(service, "tick_timeout", None)
            service._emit("service.tick_timeout", "warning", tick_timeout=limit, stack=stack)
        if report.verdict is not previous:
            level = "warning" if report.verdict.rank > previous.rank else "info"
            service._emit("service.health", level, health=report.verdict.value,
                          previous=previous.value, reasons=list(report.reasons))  # fmt: skip
        return report

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until ``ready``; False on timeout, or as soon as readiness can no longer be
        reached (a service ended or is stopping, or the supervisor is stopping)."""

        def settled() -> bool:
            if self._phase in (Phase.STOPPING, Phase.STOPPED):
                return True
            services = list(self)
            if any(
                s.state.ended or s._stop_requested
                for s in services
                if s.state is not ServiceState.NEW
            ):
                return True
            return self.ready

        with self._changed:
            self._changed.wait_for(settled, timeout)
            return self.ready

    def status(self) -> dict[str, dict[str, Any]]:
        """Every service's ``status()``, by name, in start order."""
        return {s.name: s.status() for s in self}

    def wait_running(self, timeout: float | None = None) -> bool:
        """Block until every service is RUNNING (or STANDBY, waiting for its lease); False on
        timeout, or at once when one of them
        can no longer get there (it failed or stopped) or the supervisor is stopping."""

        def settled() -> bool:
            if self._phase in (Phase.STOPPING, Phase.STOPPED):
                return True
            return all(s.state in _UP or s.state.ended or s._stop_requested for s in self)

        with self._changed:
            self._changed.wait_for(settled, timeout)
            return self._phase in (Phase.STARTING, Phase.RUNNING) and all(
                s.state in _UP for s in self
            )

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until no stop is under way (stopped, or never started); False on timeout.
        Useful after ``request_stop()`` or a stop begun by a service. A stop's stragglers
        may still be running (its ``StopReport`` names them)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._phase in (Phase.IDLE, Phase.STOPPED), timeout
            )

    # -- listeners and events ------------------------------------------------------------

    def add_listener(self, callback: Listener) -> None:
        """Call *callback* with every ``LifecycleEvent``, in the thread where it happens.

        Whatever it raises (``BaseException`` included) is logged and goes no further.
        """
        with self._lock:
            self._listeners = (*self._listeners, callback)

    def remove_listener(self, callback: Listener) -> None:
        with self._lock:
            listeners = list(self._listeners)
            listeners.remove(callback)
            self._listeners = tuple(listeners)

    def _dispatch(self, event: LifecycleEvent) -> None:
        """Hand *event* to every listener, in this thread; in the thread doing a stop or
        the exit hook, through the courier, so that a listener that blocks holds neither
        past its deadline: each waits for a listener up to ``_LISTENER_WAIT``, once, then
        goes on while the courier catches up (a listener that blocks holds only the events
        after it)."""
        me = threading.current_thread()
        exit_hook = self._exit_hook
        if me is self._stopper:
            deadline = self._stop_deadline
        elif exit_hook is not None and me is exit_hook[0]:
            deadline = exit_hook[1]
        else:
            self._deliver(event)
            return
        self._courier.send(event, min(deadline, time.monotonic() + _LISTENER_WAIT))

    def _deliver(self, event: LifecycleEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except BaseException as exc:  # user code: never into stop(), never as a Ctrl-C
                if from_signal(exc):
                    raise  # the operator's signal, raised while the listener ran
                emit(
                    _EVENTS, logging.ERROR, "listener.failed",  # a short name of the listener:
                    {"listener": safe_repr(listener), "event": event.event}, exc,  # any object
                )  # fmt: skip

    def _emit(self, event: str, level: str = "info", **fields: Any) -> None:
        levelno = LEVELS[level]
        if _EVENTS.isEnabledFor(levelno):
            emit(_EVENTS, levelno, event, fields)
        if self._listeners:
            self._dispatch(LifecycleEvent(event, None, None, time.time(), fields))

    # -- start ---------------------------------------------------------------------------

    def start(self) -> Supervisor:
        """Start every service in the order added; return once each one's setup() has ended.

        A no-op while starting or running; ``RuntimeError`` while stopping, or once the
        interpreter is shutting down (from an ``atexit`` handler, or a daemon thread after
        the main thread returned), where its threads could not be stopped gracefully. After
        a stop, a service whose run outlived it (a straggler, a daemon-safe service left
        running) is waited for, up to ``shutdown_timeout``: it is started again only once
        that run has ended, and a ``RuntimeError`` names it if it has not.
        """
        if _exit.interpreter_exiting():
            raise RuntimeError(
                "cannot start a supervisor while the interpreter is shutting down "
                "(from an atexit handler, or after the main thread has finished)"
            )
        self._await_last_runs()
        with self._lock:
            if self._phase in (Phase.STARTING, Phase.RUNNING):
                return self
            services, order = self._begin_start()
        if self.stop_at_exit:
            _exit.track(self)
        began = time.monotonic()
        self._emit("supervisor.starting", "debug", services=[s.name for s in services])
        by_name = {s.name: s for s in services}
        for service in (by_name[n] for n in order):
            if self._wake or not self._starting():
                break  # a stop (a signal, request_stop, a failure) arrived while starting
            if self._await_requirements(service) and self._launch(service):
                self._wait_setup(service)
        self._judge_started()
        watchdog = None
        with self._lock:
            if self._starting():
                self._phase = Phase.RUNNING
                self._changed.notify_all()
                if self._dirty:  # it judges the rest of what changed while starting
                    watchdog = self._new_watchdog()
        self._start_watchdog(watchdog)
        self._emit(
            "supervisor.started",
            services=len(services),
            elapsed=round(time.monotonic() - began, 4),
        )
        return self

    def _starting(self) -> bool:
        return self._phase is Phase.STARTING  # read anew: other threads change it

    def _await_last_runs(self) -> None:
        """Before a start: until every service's run from the last stop has ended, within
        ``shutdown_timeout`` (no wait when none outlived it, or while starting, running or
        stopping, where start() returns or refuses at once)."""
        if self._phase not in (Phase.IDLE, Phase.STOPPED):
            return
        deadline = time.monotonic() + self.shutdown_timeout
        for service in list(self._services.values()):
            service._wait_exited(deadline - time.monotonic())

    def _begin_start(self) -> tuple[list[Service], list[str]]:
        """IDLE or STOPPED -> STARTING (the caller holds _lock): the services, in start order.

        ``RuntimeError`` while stopping; ``ConfigError`` if a required service was never added.
        """
        if self._phase is Phase.STOPPING:
            raise RuntimeError("cannot start: the supervisor is stopping")
        running = [repr(s.name) for s in self._services.values() if not s._exited]
        if running:
            raise RuntimeError(
                f"cannot start: {', '.join(running)} still running from the last stop after "
                f"{self.shutdown_timeout:g}s (a straggler, or a daemon-safe service left "
                "running); start again once it has ended, or remove() it"
            )
        requires = {s.name: s.requires for s in self._services.values()}
        problems = _deps.problems(requires)
        if problems:
            raise ConfigError(problems)
        self._phase = Phase.STARTING
        self._report = None
        self._failure_shutdown = False
        if not self._in_run:  # run() cleared it before its signal handlers went in
            self._wake = False
        self._dirty = set()  # what changes from here is judged once the watchdog starts
        return list(self._services.values()), _deps.start_order(requires)

    def _launch(self, service: Service) -> bool:
        """Start *service*'s thread if the supervisor is starting or running; True if started.

        Two locked steps around ``init_state()`` (user code, never run under the lock); a
        service is in ``_launching`` between them, so that concurrent launches make one: a
        second launcher waits for the first to finish (it may be launching the run a restart
        has just stopped), then launches only if the service is not running.
        """
        me = threading.current_thread()
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self._launching.get(service.name) in (None, me) or not self._may_launch(service)
                )
            )
            if not self._may_launch(service) or service.name in self._launching:
                return False  # a stop began, or this thread is inside that launch's init_state()
            if service.state.active or not service._exited:
                return False  # already launched (by add() or restart() while starting)
            self._launching[service.name] = me
        try:
            try:
                service._prepare_launch(self.backoff, self.clock)
            except Exception as exc:  # init_state() is user code
                error: BaseException | None = exc
            else:
                with self._lock:  # no launch once a stop began, and never after a remove()
                    if not self._may_launch(service):
                        return False
                    armed = service._arm_thread()  # from here a stop reaches it
                if isinstance(armed, BaseException):
                    error = armed
                else:  # outside _lock: the new thread reports to us without waiting for it
                    with stack_size(self.thread_stack_size):
                        error = service._begin_thread(armed)
        finally:
            with self._changed:
                del self._launching[service.name]
                self._changed.notify_all()
        if error is not None:
            service._launch_failed(error)
            return False
        return True

    def _await_requirements(self, service: Service) -> bool:
        """Until what *service* requires is ready (True), or a stop began, or it cannot be
        (then *service* is marked FAILED), within ``ready_timeout``."""
        if not service.requires:
            return True

        def required() -> list[Service | None]:
            return [self._services.get(name) for name in service.requires]

        def settled() -> bool:
            if self._wake or self._phase not in (Phase.STARTING, Phase.RUNNING):
                return True
            if self._services.get(service.name) is not service:
                return True
            others = required()
            if any(o is None or o.state.ended or o._stop_requested for o in others):
                return True
            return all(o is not None and up_and_ready(o)
                       for o in others)  # fmt: skip

        with self._changed:
            if self._phase not in (Phase.STARTING, Phase.RUNNING):
                return False
            self._changed.wait_for(settled, self.ready_timeout)
            if self._wake or self._phase not in (Phase.STARTING, Phase.RUNNING):
                return False  # a stop began: launch nothing more
            if self._services.get(service.name) is not service:
                return False
            missing = [
                f"{name!r} ({self._why_not_up(o)})"
                for name, o in zip(service.requires, required(), strict=True)
                if o is None or not up_and_ready(o)
            ]
        if not missing:
            return True
        error = RuntimeError(f"not started: required service(s) {', '.join(missing)}")
        if service.state is ServiceState.FAILED:
            service._record_error(error)
            service._emit("service.failed", "error", exc=error, reason="requirements")
        else:
            service._launch_failed(error)
        return False

    def _why_not_up(self, required: Service | None) -> str:
        """Why a required service is not up and ready, for the dependent's error."""
        if required is None:
            return "not supervised"
        if required.state.ended:
            return required.state.value
        if required._stop_requested:
            return "stopping"
        return f"not ready within {self.ready_timeout:g}s"

    def _may_launch(self, service: Service) -> bool:
        """Starting or running, and *service* still supervised here (the caller holds _lock)."""
        return (
            self._phase in (Phase.STARTING, Phase.RUNNING)
            and self._services.get(service.name) is service
        )

    def _wait_setup(self, service: Service) -> None:
        """Until *service*'s first setup() ended, a stop began, or it was removed."""
        if service._setup_ended:  # mostly: its thread ran setup() before we got the GIL back
            return
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    service._setup_ended
                    or self._wake
                    or self._phase is not Phase.STARTING
                    or self._services.get(service.name) is not service
                )
            )

    def _judge_started(self) -> None:
        """Judge here what changed while starting and needs no watchdog (``_unwatched``),
        still STARTING: changes meanwhile wait in ``_dirty`` for the watchdog, which then
        judges them after this. Idle services with nothing due then start no watchdog at
        all, neither a thread to start nor one to stop. Nothing once a stop cut the start
        short: health no longer matters."""
        with self._lock:
            if not self._starting():
                return
            services = [self._services.get(name) for name in self._dirty]
            here = [s for s in services if s is not None and _unwatched(s)]
            self._dirty.difference_update(s.name for s in here)
        for service in here:
            self._judge_here(service)

    def _judge_here(self, service: Service) -> None:
        """Judge *service* in this thread (one ``_unwatched``), running none of its code: a
        ``check_health`` set on it meanwhile is left to the watchdog, told of it after."""
        with _BugsLogged(service.name):
            self._judge(service, own=False)
        if service._has_own_view():
            self._service_changed(service)

    # -- the watchdog ----------------------------------------------------------------------

    def _new_watchdog(self) -> threading.Thread:
        """The health watchdog's thread, made (the caller holds ``_lock``) for
        ``_start_watchdog`` to start once the lock is released. One daemon thread reports
        health changes as ``service.health`` events. It sleeps on ``_watch_wake`` until a
        service changes or the earliest stall or tick deadline passes, and ends once nothing
        has been due or changed for ``LINGER`` seconds; the next change makes another.

        start() makes the first, if any, once it has launched every service, to judge what
        changed meanwhile and needs it (a deadline, or a check of the service's own): started
        earlier, it would wake at each launch and compete with the next one for the GIL.
        """
        self._watch_generation += 1
        thread = self._watchdog = threading.Thread(
            target=self._watch, args=(self._watch_generation,), name="bgservices:watchdog",
            daemon=True,
        )  # fmt: skip
        return thread

    def _start_watchdog(self, thread: threading.Thread | None) -> None:
        """Start what ``_new_watchdog`` made (None: nothing), without ``_lock``: starting a
        thread waits for it, and other threads should not wait for that. Never within a
        launch's ``thread_stack_size`` window: a watchdog formats stacks and calls listeners."""
        if thread is None:
            return
        try:
            with default_stack():
                with self._lock:
                    if self._watchdog is not thread:  # a stop, or another, came meanwhile
                        return
                thread.start()
        except BaseException as exc:  # no new threads; or a signal's exception
            with self._lock:
                if self._watchdog is thread and thread.ident is None:
                    self._watchdog = None  # never started: the next change tries again
            if not isinstance(exc, RuntimeError):  # RuntimeError: health judged when asked
                raise

    def _stop_watchdog(self) -> None:
        with self._watch_wake:
            self._watch_generation += 1
            self._watch_wake.notify()

    def _join_watchdog(self, deadline: float) -> None:
        """Let the ended watchdog finish the check it may be in, within the stop's deadline:
        stop() leaves no thread of its own behind."""
        watchdog = self._watchdog
        if watchdog is None or not watchdog.is_alive():  # none, not started, or ended
            return
        if watchdog is not threading.current_thread():
            join(watchdog, max(0.1, deadline - time.monotonic()))

    def _watch(self, generation: int) -> None:
        clock = self.clock
        deadlines = Deadlines()  # empty once it ends: nothing was due
        due: float | None = None

        def woken() -> bool:
            return (
                self._watch_generation != generation
                or bool(self._dirty)
                or (due is not None and clock.monotonic() >= due)
            )

        while True:
            with self._watch_wake:
                if self._watch_generation != generation:
                    return
                if due is not None:
                    clock.wait_for(self._watch_wake, woken, max(0.0, due - clock.monotonic()))
                elif not self._linger(woken):  # only a change can matter, and none came: end
                    self._watchdog = None  # (under _lock) the next change makes another
                    return
                if self._watch_generation != generation:
                    return
                dirty, self._dirty = self._dirty, set()
            due = self._watch_round(deadlines, dirty)

    def _linger(self, woken: Callable[[], bool]) -> bool:
        """Nothing is due: wait up to ``LINGER`` seconds for a change (the caller holds
        ``_lock``); False if none came, and the watchdog ends. So services ending one after
        another do not start a watchdog each. On a clock other than the real one (a test's
        ``FakeClock``) it waits on that clock for a change, untimed, and never ends: as a
        sleeper its clock knows of, not a thread an ``advance()`` could miss."""
        if not isinstance(self.clock, RealClock):
            self.clock.wait_for(self._watch_wake, woken, None)
            return True
        return self._watch_wake.wait_for(woken, _WATCHDOG_LINGER)

    def _watch_round(self, deadlines: Deadlines, dirty: set[str]) -> float | None:
        """Judge the changed services and those whose deadline passed; the next deadline.

        A service's deadline is looked at again only when it changes or that deadline comes
        (a heartbeat may have moved it on meanwhile), so a round costs what changed, not a
        pass over every service: a thousand services ending at once are a thousand looks.
        """
        now = self.clock.monotonic()
        for name in dirty | deadlines.passed(now):
            service = self._services.get(name)
            if service is None:  # removed
                continue
            with _BugsLogged(name):  # a check_health() bug must not end the watchdog
                when = deadline(service)
                deadlines.put(name, when if when is not None and when > now else None)
                passed = when is not None and when <= now and deadlines.judged.get(name) != when
                if name in dirty or passed:
                    if when is not None and when <= now:
                        deadlines.judged[name] = when
                    self._judge(service)
        return deadlines.earliest()

    # -- stop ----------------------------------------------------------------------------

    def stop(self, timeout: float | None = None) -> StopReport:
        """Stop every service within *timeout* (``shutdown_timeout``) plus ``daemon_grace``.

        Services are stopped concurrently, each after the services that require it (a chain
        stops in order, independent services together: thread services 32 at a time while
        they end quickly, see ``_ask_wave``); daemon-safe services get
        ``daemon_grace``; services marked ``stop_last`` (the log collector) follow them.
        Whatever still runs at its deadline is logged with its stack and named in the report,
        never waited on further. Safe to call twice, from several threads at once, from a
        listener, or from inside a service (which then does not wait for the stop it began).
        """
        timeout = self.shutdown_timeout if timeout is None else timeout
        if not timeout >= 0:  # NaN or negative: a caller's mistake, not a wait
            raise ValueError(f"stop(timeout=...) must be >= 0, got {timeout!r}")
        timeout = min(timeout, threading.TIMEOUT_MAX / 4)  # the clock's own limit, with room
        me = threading.current_thread()
        with self._lock:
            phase = self._phase
            if phase is Phase.IDLE:
                return StopReport()
            if phase is Phase.STOPPED:
                return self._report or StopReport()
            if phase is Phase.STOPPING:
                return self._await_stop(me)
            self._phase = Phase.STOPPING
            self._stopper = me
            self._wake = True
            self._stop_watchdog()  # health no longer matters
            self._stop_deadline = time.monotonic() + timeout + self.daemon_grace
            self._changed.notify_all()
            services = list(self._services.values())
        report = StopReport(in_progress=True)
        try:
            with deferring():  # a first signal does not cut this stop short
                report = self._stop_all(services, timeout)
                self._join_watchdog(report.deadline)
        finally:
            if report.in_progress:  # cut short (Ctrl-C with no handler of ours): ask the
                for service in services:  # rest, so that whoever waits next (the exit
                    service._request_stop(quiet=True)  # hook) waits for stops under way
            with self._lock:
                self._report = report
                self._phase = Phase.STOPPED
                self._stopper = None
                self._changed.notify_all()
            self._courier.finish()
        return report

    def _await_stop(self, me: threading.Thread) -> StopReport:
        """Another stop is under way (the caller holds ``_lock``): its report, or in_progress."""
        if me is self._stopper or self._courier.carrying() or in_service_thread():
            return StopReport(in_progress=True)  # waiting could wait for ourselves
        with deferring():
            self._changed.wait_for(
                lambda: self._phase is not Phase.STOPPING,
                max(0.0, self._stop_deadline - time.monotonic()) + 1.0,
            )
        return self._report or StopReport(in_progress=True)

    def _stop_all(self, services: list[Service], timeout: float) -> StopReport:
        begun = time.monotonic()
        deadline = begun + timeout
        final = deadline + self.daemon_grace
        self._emit("supervisor.stopping", "debug", timeout=timeout)
        newest_first = services[::-1]
        last = [s for s in newest_first if s.stop_last]
        first = [s for s in newest_first if s not in last]
        self._stop_group(first, deadline, final)
        late = self._report_late(first)
        summary = _StopSummary(services, late, begun, final)
        self._emit("supervisor.stopped", **summary.fields())  # the log collector still records it
        self._stop_group(last, final, final)
        summary.late += self._report_late(last)
        report = summary.report()
        if not any(not s.daemon and not s._exited for s in services):
            _exit.untrack(self)  # a critical service still running needs the exit hook
        return report

    def _stop_group(self, services: list[Service], deadline: float, final: float) -> None:
        """Stop *services* in waves: a service is asked once every service that requires it
        has stopped; within a wave, all at once (no ``requires``: one wave, like setting
        every stop event and then joining every thread).

        The next wave waits only for the services of this one that require something (an
        unrelated slow service holds back nothing). Critical services are waited for until
        *deadline*; past it, whatever was not asked yet is asked at once with one event for
        all. Then everyone gets the daemon grace, never past *final*.
        """
        joined: set[threading.Thread] = {threading.current_thread()}  # ended, or ourselves
        rest = self._ask_in_waves(services, deadline, joined)
        if rest:  # past the deadline: ask the rest at once, with one event for all
            self._emit("supervisor.deadline", "warning", asked=[s.name for s in rest])
            for other in rest:
                other._request_stop(quiet=True)
        grace_end = min(time.monotonic() + self.daemon_grace, final)
        self._wait_all(services, grace_end, joined, every=True)
        for service in services:  # the ones that ended are finishing their last lines
            thread = service.thread  # async services share their loop's: join it once
            if service._exited and thread is not None and thread.ident and thread not in joined:
                joined.add(thread)
                join(thread, max(0.0, grace_end - time.monotonic()))

    def _ask_in_waves(
        self, services: list[Service], deadline: float, joined: set[threading.Thread]
    ) -> list[Service]:
        """Ask *services* wave by wave, then wait for the critical ones until *deadline*;
        those not asked because the deadline passed first."""
        waves = _stop_waves(services)
        for index, wave in enumerate(waves):
            self._ask_wave(wave, deadline)
            # the next wave waits only for what requires it: this wave's dependents
            if not self._wait_all([s for s in wave if s.requires], deadline, joined):
                return [s for later in waves[index + 1 :] for s in later]
        self._wait_all([s for s in services if not s.daemon], deadline, joined)
        return []

    @staticmethod
    def _ask_wave(wave: list[Service], deadline: float) -> None:
        """Ask every service of *wave* to stop: async ones at once (their loop batches
        them), thread services a window at a time. Once a window's worth are asked, wait for
        the life cycle of the oldest still running to end before asking one more; threads are
        joined later, once all are asked (CPython's join looks at every thread still
        running). An idle service ends within a millisecond; one still running after
        ``_WINDOW_WAIT`` (a teardown with work to do, or a loaded machine) doubles the
        window: slow stops soon overlap as they would without it, and one hiccup of the
        machine does not wake thousands of threads at once. Past *deadline*, the rest are
        asked at once: the window never holds a stop past its deadline."""
        threaded = []
        for service in wave:
            if service.is_async:
                service._request_stop()
            else:
                threaded.append(service)
        window, oldest = _STOP_WINDOW, 0
        for index, service in enumerate(threaded):
            while index - oldest >= window:
                left = deadline - time.monotonic()
                if left <= 0:
                    window = len(threaded)
                elif threaded[oldest]._wait_exited(min(_WINDOW_WAIT, left)):
                    oldest += 1
                else:
                    window *= 2
            service._request_stop()

    @staticmethod
    def _wait_all(
        services: list[Service],
        deadline: float,
        joined: set[threading.Thread],
        *,
        every: bool = False,
    ) -> bool:
        """Wait for *services* to end, adding each thread service's thread seen to end to
        *joined* (a thread in it is not waited for again); False once the deadline has passed
        with one still running. With *every*, each gets its wait up to the deadline."""
        for service in services:
            thread = service.thread
            if thread in joined:
                continue
            if service._join(deadline - time.monotonic()):
                if thread is not None and not service.is_async:
                    joined.add(thread)
            elif service._running_elsewhere and not every:
                return False
        return True

    def _report_late(self, services: list[Service]) -> list[Service]:
        """Services still running elsewhere, logged: the first few one by one with their
        stack, the rest in one event, so that reporting a thousand cannot overrun the stop."""
        late = [s for s in services if s._running_elsewhere]
        for service in late[:_DETAILED]:
            self._report_one_late(service)
        if len(late) > _DETAILED:
            rest = late[_DETAILED:]
            self._emit(
                "supervisor.late",
                "error" if any(not s.daemon for s in rest) else "info",
                stragglers=[s.name for s in rest if not s.daemon],
                abandoned=[s.name for s in rest if s.daemon],
            )
        return late

    def _report_one_late(self, service: Service) -> None:
        stack = service._stack()
        if not service.daemon:
            self._emit(
                "supervisor.straggler", "error", service=service.name,
                state=service.state.value, stack=stack,
            )  # fmt: skip
            return
        fields: dict[str, Any] = {"service": service.name, "state": service.state.value}
        if _EVENTS.isEnabledFor(logging.DEBUG):
            fields["stack"] = stack  # best effort, abandoned by design: no crash, no stack
        self._emit("supervisor.abandoned", **fields)

    def _stop_one(self, service: Service) -> None:
        """Stop one service within ``shutdown_timeout``, and never past a stop under way."""
        service._request_stop()
        with self._lock:
            deadline = time.monotonic() + self.shutdown_timeout
            if self._phase is Phase.STOPPING:
                deadline = min(deadline, self._stop_deadline)
        if not service._wait_exited(deadline - time.monotonic()) and service._running_elsewhere:
            self._emit(
                "supervisor.straggler",
                "warning" if service.daemon else "error",  # a daemon-safe one may be abandoned
                service=service.name,
                stack=service._stack(),
            )
            raise RuntimeError(
                f"service {service.name!r} did not stop within {self.shutdown_timeout:g}s"
            )

    def request_stop(self) -> None:
        """Begin a stop without waiting for it; safe from any thread, a listener or a service.

        Inside ``run()``, ``run()`` wakes up, stops and returns. Otherwise a thread named
        ``bgservices:stopper`` does the stop; ``stop()`` from elsewhere waits for it.
        """
        with self._lock:
            self._wake = True
            self._changed.notify_all()
            if self._in_run or self._phase not in (Phase.STARTING, Phase.RUNNING):
                return
            if self._stopper is not None:
                return
            stopper = self._stopper = threading.Thread(
                target=self.stop, name="bgservices:stopper", daemon=False
            )
        try:
            stopper.start()
        except RuntimeError:  # no new threads at interpreter shutdown: the exit hook stops us
            with self._lock:
                self._stopper = None

    def _stop_at_exit(self) -> None:
        """Called by the exit hook: stop gracefully; a critical straggler ends the process.

        A service already reported as a straggler gets no second deadline; one still running
        for another reason (it called ``stop()`` itself) gets ``shutdown_timeout``.
        """
        until = time.monotonic() + self.shutdown_timeout + self.daemon_grace
        self._exit_hook = (threading.current_thread(), until)
        self._emit("supervisor.exit", reason="main thread finished")
        try:
            report = self.stop()
            fresh = time.monotonic() + self.shutdown_timeout
            for service in [s for s in self if not s.daemon]:
                deadline = report.deadline if service.name in report.stragglers else fresh
                with deferring():
                    service._wait_exited(deadline - time.monotonic())
        except KeyboardInterrupt:  # Ctrl-C while the exit waits on a service: the operator insists
            force_exit(signal.SIGINT)
        except SystemExit:  # a deferred SIGTERM: the process is exiting already
            pass
        stuck = [s for s in self if not s.daemon and s._running_elsewhere]
        if stuck:
            self._emit(
                "supervisor.exit_forced",
                "critical",
                stragglers=[s.name for s in stuck],
                exit_code=EXIT_STRAGGLER,
            )
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(EXIT_STRAGGLER)
        self._exit_hook = None
        _exit.untrack(self)

    # -- service callbacks (in service threads) ---------------------------------------------

    def _service_changed(self, service: Service) -> None:
        if self._phase is Phase.STOPPING:
            return  # the watchdog has ended, and the stop waits on the services themselves
        with self._changed:
            noted = self._note_change(service)
        self._after_change(service, noted)

    def _note_change(self, service: Service) -> tuple[threading.Thread | None, bool]:
        """Wake whoever waits for a change, and mark *service* for the watchdog (the caller
        holds ``_lock``). Returns a new watchdog for the caller to start if there is none,
        or the last one ended for want of work; and whether the caller is to judge *service*
        itself instead, as a running supervisor's service no watchdog is needed for
        (``_unwatched``) is: the thread that made the change judges it, and no watchdog
        starts for it. While starting, start() judges the changes at its end."""
        self._changed.notify_all()
        if self._phase is Phase.RUNNING and _unwatched(service):
            return None, True
        self._dirty.add(service.name)
        if self._watchdog is None and self._phase is Phase.RUNNING:
            return self._new_watchdog(), False
        self._watch_wake.notify()
        return None, False

    def _after_change(self, service: Service, noted: tuple[threading.Thread | None, bool]) -> None:
        """Outside ``_lock``: what ``_note_change`` left to the caller."""
        watchdog, judge_here = noted
        if judge_here:
            self._judge_here(service)
        self._start_watchdog(watchdog)

    def _service_ended(self, service: Service) -> None:
        if self._phase is Phase.STOPPING:
            return  # the stop waits on the service itself; other waiters wait for the phase
        with self._changed:
            noted = self._note_change(service)
            phase = self._phase
        self._after_change(service, noted)
        if phase is Phase.STOPPED:
            if not any(not s.daemon and not s._exited for s in self):
                _exit.untrack(self)  # the last critical service still running has finished
            return
        if phase not in (Phase.STARTING, Phase.RUNNING):
            return  # a stop is under way: it waits for this service itself
        if service.state is ServiceState.FAILED and self.failure_policy == "shutdown":
            self._failure_shutdown = True
            self._emit("supervisor.failure_shutdown", "error", service=service.name)
            self.request_stop()
        elif not self._any_running():
            with self._changed:
                self._wake = True
                self._changed.notify_all()

    def _any_running(self) -> bool:
        """Whether a service has not ended yet. Asked at every service's end, so it first
        looks at one it found running last time, chosen at random: a thousand services
        ending one by one cost some thousands of looks, not a scan each (a million)."""
        hint = self._running_hint
        if hint is not None and not hint.state.ended and self._services.get(hint.name) is hint:
            return True
        running = [s for s in self if not s.state.ended]
        self._running_hint = _HINTS.choice(running) if running else None
        return bool(running)

    # -- run, signals, context manager ----------------------------------------------------------

    def run(self) -> int:
        """Start, block until a signal or until every service has ended, stop; an exit code.

        In the main thread SIGINT and SIGTERM are handled while it runs (the first stops
        gracefully, a second exits at once with 128+signum). The previous handlers are put
        back on return, unless a critical straggler is still running: then a further signal
        must still be able to end the process. Returns 0 after a clean stop, 1 if a
        ``failure_policy="shutdown"`` stop happened, a critical service FAILED, or a straggler
        was left running.
        """
        restore = None
        report: StopReport | None = None
        with self._lock:
            self._wake = False
            self._in_run = True
        try:
            if threading.current_thread() is threading.main_thread():
                restore = self.install_signal_handlers()
            self.start()
            with self._changed:
                self._changed.wait_for(lambda: self._wake)
            report = self.stop()
        finally:
            with self._lock:
                self._in_run = False
            if restore is not None and (report is None or not report.stragglers):
                restore()
        failed = any(s.state is ServiceState.FAILED and not s.daemon for s in self)
        return 1 if self._failure_shutdown or failed or not report.clean else 0

    def install_signal_handlers(self) -> Callable[[], None]:
        """Handle SIGINT/SIGTERM (main thread only); returns a function restoring the old ones.

        The handlers only record the signal and wake a thread. Inside ``run()`` the first
        signal makes ``run()`` stop and return. Outside it, the first SIGINT raises
        ``KeyboardInterrupt`` and the first SIGTERM raises ``SystemExit(143)`` in the main
        thread, so the application unwinds and the exit hook stops the services; if the main
        thread is waiting in a bgservices stop, that is raised when the stop has finished. A
        second signal logs every thread's stack and exits at once with 128+signum.
        """
        handlers = SignalHandlers(self._on_signal, raises=lambda: not self._in_run)
        handlers.install()
        self._signals = handlers
        return handlers.restore

    def _on_signal(self, signum: int) -> None:
        """The first signal, in the signal watcher thread (never in the handler)."""
        self._emit("supervisor.signal", "warning", signal=signal.Signals(signum).name)
        if self._in_run:
            self.request_stop()

    def __enter__(self) -> Supervisor:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Supervisor {self._phase.value} services={list(self._services)}>"

    # -- asyncio: where async services run; astart/astop for a running loop ---------------
    # (bgservices.aio; asyncio is imported only when an async service or astart needs it)

    def _event_loop(self) -> Loops:
        """Where async services go: the loop ``astart()`` ran in, else one loop thread of the
        supervisor's own for all of them."""
        from ._loop import Loops

        with self._lock:
            if self._loops is None:
                self._loops = Loops(self)
            return self._loops

    async def astart(self) -> Supervisor:
        """``start()`` from a coroutine: async services run as tasks on the running loop,
        thread services in their threads; never blocks the loop (``start()`` runs in a
        worker thread while the loop runs the async services' ``setup()``)."""
        import asyncio

        self._event_loop().use_running_loop()
        await asyncio.to_thread(self.start)
        return self

    async def astop(self, timeout: float | None = None) -> StopReport:
        """``stop()`` from a coroutine, within the same one deadline for thread and async
        services; never blocks the loop."""
        import asyncio

        try:
            return await asyncio.to_thread(self.stop, timeout)
        finally:
            if self._phase is Phase.STOPPED and self._loops is not None:
                self._loops.forget_running_loop()

    async def __aenter__(self) -> Supervisor:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # -- end of the asyncio section -------------------------------------------------------

    # -- fork ------------------------------------------------------------------------------

    def _reset_after_fork(self) -> None:
        """In a forked child: no thread survived, so nothing runs and nothing needs stopping."""
        self._init_runtime()
        for service in self._services.values():
            service._reset_after_fork()


def _unwatched(service: Service) -> bool:
    """Judging *service* runs no code of its own (``check_health``, ``ready``; a
    ``check_health`` set on the instance counts too) and no time alone could change its
    verdict (no deadline): any thread may judge it, at once."""
    return not service._has_own_view() and deadline(service) is None


class _BugsLogged:
    """Judging *name*: a bug (or a ``check_health()`` that raises past its own guard) is
    logged as ``supervisor.watchdog_failed``, never raised into the judging thread. A class,
    not a generator: start() enters one per service."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if not isinstance(exc, Exception):
            return False
        emit(_EVENTS, logging.ERROR, "supervisor.watchdog_failed", {"service": self.name}, exc)
        return True


def _stop_waves(services: list[Service]) -> list[list[Service]]:
    """*services* (newest first) in stop waves: each after every service requiring it."""
    dependents = _dependents(services)
    waves, todo = [], list(services)
    while todo:
        wave = [s for s in todo if not dependents[s.name]] or todo  # a cycle: all at once
        for service in wave:
            for required in _required(service):
                dependents[required] = dependents.get(required, 1) - 1
        waves.append(wave)
        chosen = {id(s) for s in wave}
        todo = [s for s in todo if id(s) not in chosen]
    return waves


def _dependents(services: list[Service]) -> dict[str, int]:
    """For each of *services*, how many of the others require it."""
    counts = {s.name: 0 for s in services}
    for service in services:  # linear: a thousand services without requires cost ~nothing
        for required in _required(service):
            if required in counts:
                counts[required] += 1
    return counts


def _required(service: Service) -> set[str]:
    """The other services *service* requires, each once (a name may be listed twice)."""
    return set(service.requires) - {service.name}
