"""``Service``: the base class users subclass. One service runs in one thread of its own.

The thread runs the life cycle: ``setup()``, ``run()``, ``teardown()``, and restarts with
backoff according to the service's restart policy. The supervisor starts and stops the thread.
Every change of state goes through one checked move (``state.TRANSITIONS``); one condition
per service guards the state and the flags of the current run, and wakes whoever waits on them.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import logging
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, dataclass_transform

import structlog

from . import leases
from . import state as _state
from ._clock import REAL_CLOCK, Clock
from ._condition import LeanCondition, join
from ._logging import LEVELS, emit, service_logger
from ._saferepr import type_name
from ._stacks import thread_stack
from .backoff import Backoff
from .errors import ConfigError, DoNotRestart, Problem
from .health import HealthCheck, ServiceHealth, Verdict, evaluate
from .options import option, validate_service_options
from .state import TRANSITIONS, LifecycleEvent, ServiceState

if TYPE_CHECKING:
    from ._lease_runner import LeaseRunner

__all__ = ["Service"]

_S = ServiceState
_SERVICE_EVENTS = logging.getLogger("bgservices.service")
_HOOKS = ("setup", "run", "teardown", "on_stop_requested", "tick", "init_state", "stats")


class _Outcome(enum.Enum):
    """How one setup/run/teardown cycle ended."""

    RETURNED = "returned"  # run() returned by itself
    CRASHED = "crashed"  # setup() or run() raised
    ENDED = "ended"  # DoNotRestart: stop for good
    STOPPED = "stopped"  # a stop was requested


class _Owner(Protocol):
    _listeners: tuple[Callable[[LifecycleEvent], Any], ...]

    def _dispatch(self, event: LifecycleEvent) -> None: ...

    def _service_changed(self, service: Service) -> None: ...

    def _service_ended(self, service: Service) -> None: ...


_current = threading.local()  # .service: the Service whose life cycle this thread runs


def in_service_thread() -> bool:
    """True in a thread that runs a service's life cycle (its hooks, its listeners' calls)."""
    return getattr(_current, "service", None) is not None


def iso_time(timestamp: float | None) -> str | None:
    """A ``time.time()`` value as ISO 8601 in UTC, for status dicts; None stays None."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def snake_case(name: str) -> str:
    """``MemoryMonitor`` -> ``memory_monitor``, ``HTTPPing`` -> ``http_ping``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def full_repr(value: object) -> str:
    """The whole ``repr(value)`` (for events, unlike config errors' short one); a
    placeholder naming its type if ``__repr__`` raises."""
    try:
        return repr(value)
    except Exception:
        return f"<unprintable {type_name(value)}>"


@dataclass_transform(kw_only_default=True, field_specifiers=(option,))
class _Declared:
    """The root type checkers treat like a dataclass: below it, each option (an annotated
    class attribute) is a typed keyword of the constructor. Nothing else lives here."""


class Service(_Declared):
    """A unit of background work with a life cycle the supervisor manages.

    Subclass it, declare options as annotated class attributes (type checkers see each one
    as a typed keyword of the constructor), and implement ``run()``
    (which must return soon after a stop is requested: use ``self.wait()`` or check
    ``self.stopping``). Set ``daemon_safe = True`` only if the work may be cut off at any
    instruction at interpreter exit without losing anything that matters.
    """

    daemon_safe: ClassVar[bool] = False
    #: Stopped after every other service and after the daemon-safe grace (the log collector,
    #: so that it records everyone else's teardown and the supervisor's last events).
    stop_last: ClassVar[bool] = False
    #: True for ``aio.AsyncService``: its hooks are coroutines, run as tasks on an event loop.
    is_async: ClassVar[bool] = False
    #: Short name in the type registry (``memory_monitor``), set by ``bgservices.register``.
    type_name: ClassVar[str | None] = None
    #: Attributes the framework sets on instances: an option may not be named like one.
    _instance_attributes: ClassVar[frozenset[str]] = frozenset(
        {"log", "restarts", "crashes", "callback_errors", "last_error"}
    )

    name: str = option(default="", help="Unique name; the class name in snake_case by default.")
    restart: Literal["on-failure", "always", "never"] = option(
        default="on-failure",
        help="Restart when setup/run raise (on-failure), also when run returns (always), or never.",
    )
    max_restarts: int = option(
        default=5,
        ge=0,
        help="More restarts than this within restart_window mark the service FAILED.",
    )
    restart_window: float = option(
        default=60.0, gt=0, help="Seconds over which restarts are counted."
    )
    daemon: bool | None = option(
        default=None,
        help="Run in a daemon thread. Defaults to the class's daemon_safe; "
        "true is refused for a class that is not daemon-safe.",
    )
    requires: list[str] = option(
        default=[],
        help="Names of services that must be ready before this one starts; "
        "this one is stopped before them.",
    )
    stall_after: float | None = option(
        default=None,
        gt=0,
        help="Failing when no heartbeat (a successful tick, or self.heartbeat()) "
        "comes within this many seconds while running.",
    )
    lease: leases.Lease | None = option(
        default=None,
        help="Run only while holding this lease ({url, key, ttl} for Redis, {path} for a file "
        "lock); wait in STANDBY otherwise. self.lease.token is the fencing token.",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _refuse_async_hooks(cls)
        _refuse_shadowing_options(cls)

    if not TYPE_CHECKING:  # type checkers synthesise the constructor from the options

        def __init__(self, **options: Any) -> None:
            self._configure(options)

    def _configure(self, options: Mapping[str, Any]) -> None:
        """Validate *options* (every problem at once), set them, and make the runtime state."""
        values, problems = validate_service_options(type(self), options)
        if problems:
            raise ConfigError(problems)
        for key, value in values.items():
            setattr(self, key, value)
        if not self.name:
            self.name = snake_case(type(self).__name__)
        if self.daemon is None:
            self.daemon = self.daemon_safe
        self.restarts = 0
        self.crashes = 0
        self.callback_errors = 0
        self.last_error: dict[str, str] | None = None
        # _cond guards: _state, _stop_requested, _stop_hook_done, _setup_ended, _exited,
        # _thread and _owner. Waiters (wait(), wait_for_state(), the supervisor) sleep on it.
        self._cond = LeanCondition()
        self._state = ServiceState.NEW
        self._stop_requested = False
        self._stepping_down = False  # the lease was lost: run() is asked to end, not the service
        self._stop_hook_done = True
        self._setup_ended = True
        self._exited = True  # no thread of this service is running
        self._thread: threading.Thread | None = None
        self._owner: _Owner | None = None
        self._backoff = Backoff()
        self._clock: Clock = REAL_CLOCK
        self._pid = os.getpid()
        self._restart_times: list[float] = []
        self._started_at: float | None = None
        self._running_since: float | None = None
        #: ``self._clock.monotonic()`` of the last sign of progress while running.
        self._heartbeat_at: float | None = None
        self._stall_reported = False  # the watchdog reported the current stall
        self._new_run()

    def _new_run(self) -> None:
        """Reset the framework's per-run figures, then the subclass's (``init_state``)."""
        if self.lease is not None:
            from ._lease_runner import runner_for

            self._lease_runner: LeaseRunner = runner_for(self, getattr(self, "_lease_runner", None))
        self.init_state()

    def init_state(self) -> None:
        """Create the state of one run: counters, queues, sessions, locks.

        Called at construction, before every launch, and in a child after ``os.fork()``, so
        that a run never shares such state with an earlier run or with the parent process.
        Override it (calling ``super().init_state()``) rather than making such state in
        ``__init__``.
        """

    @classmethod
    def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
        """Rules that span several options; return a problem for each broken one.

        Runs whenever the options it reads are valid (*values* has the defaults filled in),
        so every problem is reported at once; it may be called more than once, so keep it a
        plain function of *values*. Override (calling ``super()``) to add your own; the dict
        config runs it too, before anything is constructed.
        """
        lease = values.get("lease")
        problems = [Problem("lease", text) for text in lease.problems()] if lease else []
        if values.get("daemon") is True and not cls.daemon_safe:
            problems.append(
                Problem(
                    "daemon",
                    f"{cls.__name__} is not daemon-safe, so it cannot run as a daemon "
                    "(configuration can make a service safer, never less safe)",
                )
            )
        return problems

    # -- hooks for subclasses -------------------------------------------------------------

    def setup(self) -> None:
        """Acquire resources; runs in the service thread before ``run()``.

        If it raises, ``teardown()`` is not called: clean up what you acquired here.
        """

    def run(self) -> None:
        """The service's body. Must return soon after a stop is requested."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def teardown(self) -> None:
        """Release resources; runs after every ``run()``, whether it returned, raised or stopped."""

    def on_stop_requested(self) -> None:
        """Override to unblock a ``run()`` stuck in I/O (close its socket, say).

        Runs once per stop request, in a short-lived thread of its own, so that a hook that
        blocks cannot stretch the stop; ``teardown()`` waits for it to return.
        """

    def stats(self) -> dict[str, Any]:
        """The subclass's own JSON-serialisable figures; ``status()`` adds the framework's."""
        return {}

    def summary(self) -> str:
        """One line for status tables (``bgservices run``); empty by default."""
        return ""

    def check_health(self) -> HealthCheck | None:
        """The service's own view of its health, asked while it runs; None means fine.

        Override to return ``HealthCheck.degraded(reason)`` or ``HealthCheck.failing(reason)``
        when the work is not getting done (a target down, data stale). Keep it quick and
        side-effect free: it runs whenever health is asked for, in the asking thread.
        """
        return None

    @property
    def ready(self) -> bool:
        """Whether the service can do its job yet: by default, RUNNING with setup() done.

        Override for services that need more (a first load): readiness is re-read whenever
        the service changes state or ends a tick.
        """
        return self._state is _S.RUNNING and self._setup_ended

    def _has_own_view(self) -> bool:
        """Whether judging this service runs code of its own: a ``check_health`` or
        ``ready`` of its class, or a ``check_health`` set on the instance."""
        return _class_has_own_view(type(self)) or "check_health" in self.__dict__

    def health_report(self) -> ServiceHealth:
        """This service's health now: verdict, reasons, readiness (see ``bgservices.health``)."""
        return evaluate(self)

    def _progress_health(self, now: float) -> list[tuple[Verdict, str, float | None]]:
        """Verdicts from the subclass's progress figures: (verdict, reason, and for a tick
        overrun when that tick began, else None)."""
        return []

    def _progress_deadline(self) -> float | None:
        """When the current iteration's deadline passes (monotonic), if one is set."""
        return None

    # -- helpers for subclasses -----------------------------------------------------------

    @functools.cached_property
    def log(self) -> structlog.stdlib.BoundLogger:
        """structlog's bound-logger API over the stdlib logger of the class's module.

        ``self.log.info("event", key=value)``; bound with ``service=<name>``, so
        ``logging.getLogger("myapp.jobs").setLevel(...)`` governs a service defined there.
        """
        return service_logger(type(self).__module__, service=self.name)

    def call_safely(self, callback: Callable[..., Any] | None, *args: Any, what: str) -> Any:
        """Call a user's *callback*; an exception is logged and counted, never raised.

        Returns the callback's result, or None when it is missing or raised.
        """
        if callback is None:
            return None
        try:
            return callback(*args)
        except Exception as exc:
            self.callback_errors += 1
            self._emit("service.callback_failed", "error", exc=exc, callback=what)
            return None

    def heartbeat(self) -> None:
        """Record progress: call it on each round of a ``run()`` loop (ticks do it themselves).

        With ``stall_after`` set, no heartbeat within that many seconds makes the service
        failing. Cheap: one clock read, and a wake-up of the watchdog only after a stall.
        """
        self._heartbeat_at = self._clock.monotonic()
        if self._stall_reported:
            self._stall_reported = False
            self._changed()

    @property
    def clock(self) -> Clock:
        """The clock this service reads and waits on: the supervisor's (``Supervisor(clock=)``).

        Read time through it (``self.clock.monotonic()``) and a test's
        ``bgservices.testing.FakeClock`` moves your service's idea of time too.
        """
        return self._clock

    @property
    def stopping(self) -> bool:
        """True once a stop has been requested (or the lease lost: run() must end)."""
        return self._stop_requested or self._stepping_down

    def wait(self, seconds: float) -> bool:
        """Sleep up to *seconds*; return True at once if a stop is requested."""
        with self._cond:
            return self._clock.wait_for(
                self._cond, lambda: self._stop_requested or self._stepping_down, max(0.0, seconds)
            )

    @property
    def state(self) -> ServiceState:
        return self._state

    @property
    def thread(self) -> threading.Thread | None:
        """The thread the service runs in, once started."""
        return self._thread

    def wait_for_state(self, *states: ServiceState, timeout: float | None = None) -> bool:
        """Block until the service is in one of *states*; False on timeout, or at once when
        none of them can be reached any more (it ended, or is stopping, elsewhere).

        It sees the state each time it wakes, so a state passed through briefly (a short
        BACKOFF) can be missed: listeners see every transition.
        """
        wanted = frozenset(states)
        with self._cond:
            self._cond.wait_for(
                lambda: self._state in wanted or not (_reachable(self._state) & wanted), timeout
            )
            return self._state in wanted

    def status(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: the framework's fields, then the subclass's ``stats()``.

        The framework's fields always win a name clash, whatever ``stats()`` returns.
        """
        result = self._status_fields()
        try:
            own = self.stats()
        except Exception as exc:
            own = {"stats_error": full_repr(exc)}
        if isinstance(own, Mapping):
            for key, value in own.items():
                result.setdefault(key, value)
        else:
            result["stats_error"] = f"stats() returned {type(own).__name__}, not a dict"
        return result

    def _status_fields(self) -> dict[str, Any]:
        cls = type(self)
        since = self._running_since
        return {
            "name": self.name,
            "type": cls.type_name or f"{cls.__module__}:{cls.__qualname__}",
            "daemon": bool(self.daemon),
            "state": self._state.value,
            "restarts": self.restarts,
            "crashes": self.crashes,
            "last_error": self.last_error,
            "started_at": iso_time(self._started_at),
            "uptime": round(self._clock.monotonic() - since, 3) if since is not None else None,
            **({"lease": self._lease_runner.status()} if self.lease is not None else {}),
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state.value}>"

    # -- driven by the supervisor ---------------------------------------------------------

    def _claim(self, owner: _Owner | None) -> None:
        """Belong to *owner* (None: to nobody); a service has at most one supervisor."""
        with self._cond:
            if owner is not None and self._owner is not None and self._owner is not owner:
                raise ValueError(
                    f"service {self.name!r} is already supervised by another Supervisor; "
                    "remove it there first"
                )
            self._owner = owner

    def _prepare_launch(self, backoff: Backoff, clock: Clock = REAL_CLOCK) -> None:
        """Fresh per-run state before a launch (user code: called without the owner's lock)."""
        with self._cond:
            if not self._exited:
                raise RuntimeError(f"service {self.name!r} is still running")
        self._backoff, self._clock = backoff, clock
        self._restart_times = []
        self._new_run()

    def _start_thread(self) -> BaseException | None:
        """Move to STARTING and start the thread; the error if it could not be started.

        Emits nothing: the caller may hold its lock. The thread reports its own start.
        """
        armed = self._arm_thread()
        return armed if isinstance(armed, BaseException) else self._begin_thread(armed)

    def _arm_thread(self) -> threading.Thread | BaseException:
        """Move to STARTING and make the thread, not started yet (or the error).

        From here a stop request is honoured by the thread once ``_begin_thread`` starts it,
        so an owner can arm under its lock and start the thread after releasing it: the new
        thread then never waits for that lock while its starter waits for it.
        """
        with self._cond:
            if not self._exited or not self._move(_S.STARTING):
                return RuntimeError(f"service {self.name!r} is already running")
            self._stop_requested, self._stop_hook_done = False, True
            self._stepping_down = False
            self._setup_ended, self._exited = False, False
            self._pid = os.getpid()
            thread = self._thread = threading.Thread(
                target=self._main, name=f"bgservices:{self.name}", daemon=bool(self.daemon)
            )
        return thread

    def _begin_thread(self, thread: threading.Thread) -> BaseException | None:
        """Start the thread ``_arm_thread`` made; the error if it could not be started."""
        try:
            thread.start()
        except BaseException as exc:  # "can't start new thread": out of threads or memory
            with self._cond:
                self._setup_ended = self._exited = True
                self._cond.notify_all()
            return exc
        return None

    def _launch_failed(self, exc: BaseException) -> None:
        """Its thread could not be started: FAILED with that error."""
        self._record_error(exc)
        try:  # a listener may raise the operator's signal: the owner still hears of the end
            self._transition(_S.FAILED, "service.failed", "error", exc=exc, reason="thread start")
        finally:
            owner = self._owner
            if owner is not None:
                owner._service_ended(self)

    def _request_stop(self, *, quiet: bool = False) -> None:
        """Ask the service to stop; never blocks. ``on_stop_requested`` runs in its own thread.

        *quiet*: no ``service.stopping`` event (the caller reports many at once).
        """
        with self._cond:
            if self._stop_requested:
                return
            self._stop_requested = True
            was = self._state
            active = was in (_S.STANDBY, _S.STARTING, _S.RUNNING, _S.BACKOFF)
            if active:
                self._move(_S.STOPPING)
            run_hook = (
                active
                and was is not _S.STANDBY  # no run() to unblock
                and not self._stepping_down  # its step-down already ran the hook
                and self._has_stop_hook()
            )
            if run_hook:
                self._stop_hook_done = False
            self._cond.notify_all()
        if active and not quiet:
            self._emit("service.stopping", "debug")
        self._stop_requested_now(run_hook)

    def _has_stop_hook(self) -> bool:
        """The class overrides ``on_stop_requested`` (else no stop runs it)."""
        return type(self).on_stop_requested is not Service.on_stop_requested

    def _stop_requested_now(self, run_hook: bool) -> None:
        """Wake the service for its stop; start ``on_stop_requested`` if *run_hook*."""
        if run_hook:
            try:
                threading.Thread(
                    target=self._run_stop_hook, name=f"bgservices:{self.name}:on-stop", daemon=True
                ).start()
            except RuntimeError:  # no new threads (interpreter shutdown): run it here
                self._run_stop_hook()

    def _request_step_down(self) -> None:
        """The lease is lost: ask run() to end (``on_stop_requested`` too); the service then
        waits in STANDBY rather than stopping. Never blocks."""
        with self._cond:
            if self._stop_requested or self._stepping_down:
                return
            self._stepping_down = True
            run_hook = self._has_stop_hook()
            if run_hook:
                self._stop_hook_done = False
            self._cond.notify_all()
        self._stop_requested_now(run_hook)

    def _run_stop_hook(self) -> None:
        previous, _current.service = getattr(_current, "service", None), self
        try:
            self.on_stop_requested()
        except BaseException as exc:  # user code: logged, never raised into the stop
            self._record_error(exc)
            self._emit("service.on_stop_requested_failed", "error", exc=exc)
        finally:
            _current.service = previous
            with self._cond:
                self._stop_hook_done = True
                self._cond.notify_all()

    def _wait_exited(self, timeout: float | None) -> bool:
        """Wait for the service thread to finish its life cycle; True if it has."""
        if self._exited:  # most calls of a stop: it ended while the others were asked
            return True
        if self._thread is threading.current_thread():
            return False
        with self._cond:
            return self._cond.wait_for(
                lambda: self._exited, None if timeout is None else max(0.0, timeout)
            )

    def _join(self, timeout: float | None) -> bool:
        """``_wait_exited`` for a stop: wait for the service's thread itself to end, so that
        the stopping thread is woken once per service, not for the exit and then again for
        the join; True once that thread has ended. A thread not started yet, or an async
        service's (its loop's, shared): ``_wait_exited``."""
        thread = self._thread
        if self.is_async or thread is None or thread is threading.current_thread():
            return self._wait_exited(timeout)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        try:
            join(thread, None if timeout is None else max(0.0, timeout))
        except RuntimeError:  # armed, not started yet: its life cycle, then its last lines
            if not self._wait_exited(timeout):
                return False
            if thread.ident is None:  # it never started: _begin_thread failed
                return True
            join(thread, None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not thread.is_alive()

    def _stack(self) -> str:
        """Where the service is now, for a straggler's report: its thread's stack."""
        thread = self._thread
        return thread_stack(thread) if thread is not None else ""

    @property
    def _running_elsewhere(self) -> bool:
        """Its thread is still in the life cycle, and it is not the calling thread."""
        return not self._exited and self._thread is not threading.current_thread()

    def _reset_after_fork(self) -> None:
        """In a forked child: the thread is gone, so the service is not running."""
        self._cond = LeanCondition()  # the parent's may have been held
        with self._cond:
            if self._state.active:
                self._move(_S.STOPPED)
            self._stop_requested, self._stop_hook_done = False, True
            self._stepping_down = False
            self._setup_ended = self._exited = True
        self._new_run()

    # -- the life cycle, in the service thread --------------------------------------------

    def _main(self) -> None:
        _current.service = self
        try:
            self._emit("service.starting", "debug", restarts=self.restarts)
            try:
                self._live()
            finally:
                if self.lease is not None:
                    self._lease_runner.close()
        except BaseException as exc:  # a bug here or in a listener: never leave it "RUNNING"
            self._record_error(exc)
            self._transition(_S.FAILED, "service.failed", "error", exc=exc, reason="internal")
        finally:
            with self._cond:
                if self._state.active:  # only reached after an error above was not reportable
                    self._move(_S.FAILED)
                self._setup_ended = self._exited = True
                self._cond.notify_all()
            owner = self._owner
            if owner is not None:
                owner._service_ended(self)

    def _live(self) -> None:
        """Cycles of setup/run/teardown, with backoff between them, until an ending."""
        attempt = 0
        lease = self._lease_runner if self.lease is not None else None
        while True:
            if lease is not None and not lease.hold():  # STANDBY until it holds the lease
                self._transition(_S.STOPPED, "service.stopped", "debug")
                return
            try:
                outcome, exc, ran_for = self._cycle()
            finally:
                stepped_down = lease is not None and lease.end_cycle()
            if stepped_down:  # the lease was lost: STANDBY again
                continue
            delay = self._after_cycle(outcome, exc, ran_for, attempt)
            if delay is None:
                return
            attempt, seconds = delay
            if self.wait(seconds) or not self._relaunching():
                self._transition(_S.STOPPED, "service.stopped", "debug")
                return

    # The decisions of the life cycle, shared with ``aio.AsyncService``: its loop awaits
    # where this one blocks, and asks these the same questions in the same order.

    def _after_cycle(
        self, outcome: _Outcome, exc: BaseException | None, ran_for: float, attempt: int
    ) -> tuple[int, float] | None:
        """What follows a cycle: None once the service ended (reported), else
        ``(attempt, delay)`` with the service moved to BACKOFF for *delay* seconds."""
        if self._stop_requested:
            outcome = _Outcome.STOPPED
        if outcome is _Outcome.STOPPED:
            self._transition(_S.STOPPED, "service.stopped", "debug")
            return None
        if outcome is _Outcome.ENDED:
            self._transition(_S.STOPPED, "service.stopped", reason=str(exc) or "DoNotRestart")
            return None
        if not self._should_restart(outcome):
            if outcome is _Outcome.CRASHED:
                self._fail(exc, "restart policy")
            else:
                self._transition(_S.STOPPED, "service.stopped", reason="run returned")
            return None
        if not self._restart_allowed():
            self._fail(exc, f"over {self.max_restarts} restarts in {self.restart_window:g}s")
            return None
        attempt = 1 if ran_for >= self._backoff.reset_after else attempt + 1
        delay = self._backoff.delay(attempt, self._clock.random)
        if not self._transition(
            _S.BACKOFF, "service.backoff", "warning", unless_stopping=True,
            attempt=attempt, delay=round(delay, 3),
        ):  # fmt: skip
            self._transition(_S.STOPPED, "service.stopped", "debug")
            return None
        return attempt, delay

    def _relaunching(self) -> bool:
        """After the backoff: count the restart and move to STARTING; False if stopping."""
        self.restarts += 1
        return self._transition(
            _S.STARTING, "service.starting", "debug", unless_stopping=True, restarts=self.restarts
        )

    def _setup_failed(self, exc: BaseException) -> _Outcome:
        """setup() raised: how the cycle ended (a crash is counted and logged)."""
        if isinstance(exc, DoNotRestart):
            outcome = _Outcome.ENDED
        else:
            self._crashed(exc, "setup")
            outcome = _Outcome.CRASHED
        self._setup_done()
        return outcome

    def _began_running(self) -> tuple[float, bool]:
        """setup() returned: (when the run began, whether it moved to RUNNING)."""
        begun = self._running_since = self._heartbeat_at = self._clock.monotonic()
        self._started_at = self._clock.time()
        running = self._transition(
            _S.RUNNING, "service.running", "debug", unless_stopping=True, setup_done=True
        )
        if not running:
            self._setup_done()
        return begun, running

    def _run_failed(self, exc: BaseException) -> _Outcome:
        """run() raised: how the cycle ended (a crash is counted and logged)."""
        if isinstance(exc, DoNotRestart):
            return _Outcome.ENDED
        self._crashed(exc, "run")
        return _Outcome.CRASHED

    def _teardown_failed(self, exc: BaseException) -> None:
        self._record_error(exc)
        self._emit("service.teardown_failed", "error", exc=exc)

    def _fail(self, exc: BaseException | None, reason: str) -> None:
        error = None if exc is None else full_repr(exc)
        self._transition(_S.FAILED, "service.failed", "error", reason=reason, error=error)

    def _should_restart(self, outcome: _Outcome) -> bool:
        if self.restart == "never":
            return False
        return self.restart == "always" or outcome is _Outcome.CRASHED

    def _restart_allowed(self) -> bool:
        now = self._clock.monotonic()
        times = self._restart_times = [
            t for t in self._restart_times if t > now - self.restart_window
        ]
        if len(times) >= self.max_restarts:
            return False
        times.append(now)
        return True

    def _cycle(self) -> tuple[_Outcome, BaseException | None, float]:
        """One setup/run/teardown round: (outcome, exception, seconds run)."""
        try:
            self._call_hook(self.setup)
        except BaseException as exc:
            return self._setup_failed(exc), exc, 0.0
        begun, running = self._began_running()
        outcome: tuple[_Outcome, BaseException | None] = (_Outcome.RETURNED, None)
        if running:
            try:
                self._call_hook(self.run)
            except BaseException as exc:
                outcome = (self._run_failed(exc), exc)
        if not self._stop_hook_done:  # on_stop_requested may still run: never both at once
            with self._cond:
                self._cond.wait_for(lambda: self._stop_hook_done)
        try:
            self._call_hook(self.teardown)
        except BaseException as exc:
            self._teardown_failed(exc)
        self._running_since = None
        return outcome[0], outcome[1], self._clock.monotonic() - begun

    def _setup_done(self) -> None:
        """The first setup() of this launch has ended (what ``Supervisor.start()`` waits for)."""
        if self._setup_ended:
            return
        with self._cond:
            self._setup_ended = True
            self._cond.notify_all()
        self._changed()

    def _call_hook(self, hook: Callable[[], None]) -> None:
        """Call a user hook; a process forked inside it never comes back into this code."""
        try:
            hook()
        except BaseException:
            if os.getpid() != self._pid:
                _exit_forked_child(1)
            raise
        if os.getpid() != self._pid:
            _exit_forked_child(0)

    def _crashed(self, exc: BaseException, hook: str) -> None:
        """Anything ``setup``/``run`` raised, BaseExceptions included: counted and logged.

        Plain ``threading`` drops a ``SystemExit`` raised in a thread without a word; here it
        is a crash like any other, and the restart policy decides what follows.
        """
        self._record_error(exc)  # first: whoever sees the count sees the error it counts
        self.crashes += 1
        self._emit("service.crashed", "error", exc=exc, hook=hook)

    def _record_error(self, exc: BaseException) -> None:
        try:
            message = str(exc)
        except Exception:
            message = full_repr(exc)
        self.last_error = {
            "type": type(exc).__qualname__,
            "message": message,
            "traceback": "".join(traceback.format_exception(exc)),
        }

    def _move(self, new: ServiceState) -> bool:
        """Change state if the table allows it; the caller holds ``_cond``. Never silent."""
        old = self._state
        if new not in TRANSITIONS[old]:
            _state.disallowed(self.name, old, new)
            return False
        self._state = new
        self._cond.notify_all()
        return True

    def _transition(
        self,
        new: ServiceState,
        event: str,
        level: str = "info",
        *,
        unless_stopping: bool = False,
        setup_done: bool = False,
        exc: BaseException | None = None,
        **fields: Any,
    ) -> bool:
        """Move to *new* and report it; False if not moved.

        With *unless_stopping*, a requested stop wins: the move is not made (not an error).
        With *setup_done*, a move also marks the first setup() ended, in the same step (one
        wake-up of the owner rather than two).
        """
        with self._cond:
            if unless_stopping and (self._stop_requested or self._stepping_down):
                return False
            moved = self._move(new)
            if moved and setup_done:
                self._setup_ended = True
        if not moved:
            self._emit("service.bad_transition", "error", to=new.value, state=self._state.value)
            return False
        if not new.ended:  # an end is told to the owner once, by _service_ended, right after
            self._changed()
        self._emit(event, level, exc=exc, **fields)
        return True

    def _changed(self) -> None:
        owner = self._owner
        if owner is not None:
            owner._service_changed(self)

    def _emit(
        self, event: str, level: str = "info", exc: BaseException | None = None, **fields: Any
    ) -> None:
        """Log *event* (if its level is enabled) and hand it to listeners (if there are any).

        Lifecycle events (``service.*``) go to the ``bgservices.service`` logger; a
        built-in's own events to its module's logger.
        """
        levelno = LEVELS[level]
        logger = _SERVICE_EVENTS if event.startswith("service.") else _events_logger(type(self))
        if logger.isEnabledFor(levelno):
            emit(logger, levelno, event, {"service": self.name, **fields}, exc)
        owner = self._owner
        if owner is not None and owner._listeners:
            if exc is not None:
                fields = {**fields, "error": full_repr(exc)}
            owner._dispatch(LifecycleEvent(event, self.name, self._state, time.time(), fields))


_own_views: dict[type, bool] = {}


def _class_has_own_view(cls: type[Service]) -> bool:
    found = _own_views.get(cls)
    if found is None:
        found = _own_views[cls] = (
            cls.check_health is not Service.check_health or cls.ready is not Service.ready
        )
    return found


_event_loggers: dict[type, logging.Logger] = {}


def _events_logger(cls: type) -> logging.Logger:
    """The logger of the built-in module *cls* comes from, else ``bgservices.service``."""
    logger = _event_loggers.get(cls)
    if logger is None:
        module = next(
            (k.__module__ for k in cls.__mro__ if k.__module__.startswith("bgservices.services.")),
            None,
        )
        logger = _event_loggers[cls] = logging.getLogger(module) if module else _SERVICE_EVENTS
    return logger


@functools.cache
def _reachable(state: ServiceState) -> frozenset[ServiceState]:
    """States reachable from *state* without a new launch (an ended service stays ended)."""
    seen, todo = {state}, [state]
    while todo:
        current = todo.pop()
        if current.ended:
            continue
        for following in TRANSITIONS[current] - seen:
            seen.add(following)
            todo.append(following)
    return frozenset(seen)


def _exit_forked_child(code: int) -> None:
    """A child forked inside a hook came back into the service thread: end it here."""
    if code:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _refuse_async_hooks(cls: type[Service]) -> None:
    if cls.is_async:
        return  # aio.AsyncService checks its own hooks
    for hook in _HOOKS:
        func = cls.__dict__.get(hook)
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            base = "AsyncPeriodicService" if hook == "tick" else "AsyncService"
            raise TypeError(
                f"{cls.__qualname__}.{hook} is `async def`, but {cls.__qualname__} runs in a "
                "thread, where a coroutine is never awaited: subclass "
                f"bgservices.{base} to run it on an event loop, or make it a plain `def`"
            )


def _refuse_shadowing_options(cls: type) -> None:
    """An option named like an attribute the framework uses would silently break it."""
    taken = _framework_names(cls)
    for name, annotation in inspect.get_annotations(cls).items():
        if name.startswith("_") or "ClassVar" in str(annotation):
            continue
        if name in taken:
            raise TypeError(
                f"{cls.__qualname__}: the option {name!r} would shadow the framework's "
                f"attribute {name!r}; choose another name"
            )


def _framework_names(cls: type) -> set[str]:
    names: set[str] = set()
    for base in cls.__mro__[1:]:
        if base is object:
            continue
        annotated = inspect.get_annotations(base)
        names.update(
            name for name in vars(base) if not name.startswith("_") and name not in annotated
        )
        names.update(getattr(base, "_instance_attributes", ()))
    return names
