"""``Service``: the base class users subclass. One service runs in one thread of its own.

The thread runs the life cycle: ``setup()``, ``run()``, ``teardown()``, and restarts with
backoff according to the service's restart policy. The supervisor starts and stops the thread;
everything the service's code does happens in that thread, except ``on_stop_requested()``,
which runs in the thread that asks for the stop so it can unblock a ``run()`` stuck in I/O.
"""

from __future__ import annotations

import collections
import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol

import structlog

from ._logging import log_safely
from .backoff import Backoff
from .errors import ConfigError, DoNotRestart, Problem
from .options import option, validate_options
from .state import LifecycleEvent, ServiceState

__all__ = ["Service"]

_S = ServiceState
_RETURNED, _ERROR, _ENDED = "returned", "error", "ended"


class _Owner(Protocol):
    def _dispatch(self, event: LifecycleEvent) -> None: ...

    def _service_ended(self, service: Service) -> None: ...


def iso_time(timestamp: float | None) -> str | None:
    """A ``time.time()`` value as ISO 8601 in UTC, for status dicts; None stays None."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def snake_case(name: str) -> str:
    """``MemoryMonitor`` -> ``memory_monitor``, ``HTTPPing`` -> ``http_ping``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


class Service:
    """A unit of background work with a life cycle the supervisor manages.

    Subclass it, declare options as annotated class attributes, and implement ``run()``
    (which must return soon after a stop is requested: use ``self.wait()`` or check
    ``self.stopping``). Set ``daemon_safe = True`` only if the work may be cut off at any
    instruction at interpreter exit without losing anything that matters.
    """

    daemon_safe: ClassVar[bool] = False
    #: Short name in the type registry (``memory_monitor``), set by ``bgservices.register``.
    type_name: ClassVar[str | None] = None

    name: str = option("", help="Unique name; the class name in snake_case by default.")
    restart: Literal["on-failure", "always", "never"] = option(
        "on-failure",
        help="Restart when setup/run raise (on-failure), also when run returns (always), or never.",
    )
    max_restarts: int = option(
        5, ge=0, help="More restarts than this within restart_window mark the service FAILED."
    )
    restart_window: float = option(60.0, gt=0, help="Seconds over which restarts are counted.")
    daemon: bool | None = option(
        None,
        help="Run in a daemon thread. Defaults to the class's daemon_safe; "
        "true is refused for a class that is not daemon-safe.",
    )

    def __init__(self, **options: Any) -> None:
        values, problems = validate_options(type(self), options)
        if not problems:  # cross-option rules need every option valid, or they mislead
            problems = type(self).check_options(values)
        if problems:
            raise ConfigError(problems)
        for key, value in values.items():
            setattr(self, key, value)
        if not self.name:
            self.name = snake_case(type(self).__name__)
        if self.daemon is None:
            self.daemon = self.daemon_safe
        self.log: Any = structlog.get_logger("bgservices", service=self.name)
        self.restarts = 0
        self.crashes = 0
        self.callback_errors = 0
        self.last_error: dict[str, str] | None = None
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        """The framework's own per-run state, then the subclass's (``init_state``)."""
        self._cond = threading.Condition()
        self._state = ServiceState.NEW
        self._stop_event = threading.Event()
        self._stop_hook_done = threading.Event()
        self._first_setup_done = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner: _Owner | None = None
        self._backoff = Backoff()
        self._restart_times: collections.deque[float] = collections.deque()
        self._started_at: float | None = None
        self._running_since: float | None = None
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

        Runs only once every option passed its own check; *values* has the defaults filled in.

        Override (calling ``super()``) to add your own; the dict config runs it too, before
        anything is constructed.
        """
        if values.get("daemon") is True and not cls.daemon_safe:
            return [
                Problem(
                    "daemon",
                    f"{cls.__name__} is not daemon-safe, so it cannot run as a daemon "
                    "(configuration can make a service safer, never less safe)",
                )
            ]
        return []

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
        """Called from the stopping thread; override to unblock a ``run()`` stuck in I/O."""

    def stats(self) -> dict[str, Any]:
        """Extra JSON-serialisable figures for ``status()``."""
        return {}

    # -- helpers for subclasses -----------------------------------------------------------

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

    @property
    def stopping(self) -> bool:
        """True once a stop has been requested."""
        return self._stop_event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to *seconds*; return True at once if a stop is requested."""
        return self._stop_event.wait(max(0.0, seconds))

    @property
    def state(self) -> ServiceState:
        return self._state

    @property
    def thread(self) -> threading.Thread | None:
        """The thread the service runs in, once started."""
        return self._thread

    def wait_for_state(self, *states: ServiceState, timeout: float | None = None) -> bool:
        """Block until the service is in one of *states*; False on timeout.

        It sees the state each time it wakes, so a state passed through briefly (a short
        BACKOFF) can be missed: listeners see every transition.
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._state in states, timeout)

    def status(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: identity, state, restarts, last error, timing, stats."""
        cls = type(self)
        since = self._running_since
        result: dict[str, Any] = {
            "name": self.name,
            "type": cls.type_name or f"{cls.__module__}:{cls.__qualname__}",
            "daemon": bool(self.daemon),
            "state": self._state.value,
            "restarts": self.restarts,
            "crashes": self.crashes,
            "last_error": self.last_error,
            "started_at": iso_time(self._started_at),
            "uptime": round(time.monotonic() - since, 3) if since is not None else None,
        }
        try:
            result.update(self.stats())
        except Exception as exc:
            result["stats_error"] = repr(exc)
        return result

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state.value}>"

    # -- driven by the supervisor ---------------------------------------------------------

    def _launch(self, owner: _Owner, backoff: Backoff) -> None:
        """Start the service thread; its daemon flag is always set explicitly."""
        with self._cond:
            if self._state.active:
                raise RuntimeError(f"service {self.name!r} is already running")
            self._owner, self._backoff = owner, backoff
            self._stop_event = threading.Event()
            self._stop_hook_done = threading.Event()
            self._first_setup_done = threading.Event()
            self._restart_times.clear()
            self.init_state()
            self._state = ServiceState.STARTING
            self._cond.notify_all()
            self._thread = threading.Thread(
                target=self._main, name=f"bgservices:{self.name}", daemon=bool(self.daemon)
            )
        try:
            self._thread.start()
        except BaseException as exc:  # e.g. "can't create new thread at interpreter shutdown"
            self._first_setup_done.set()
            self._record_error(exc)
            self._transition(_S.FAILED, "service.failed", "error", exc=exc, reason="thread start")
            raise

    def _request_stop(self) -> None:
        """Set the stop event and, the first time while active, call ``on_stop_requested``."""
        with self._cond:
            first = not self._stop_event.is_set()
            self._stop_event.set()
            active = self._state in (_S.STARTING, _S.RUNNING, _S.BACKOFF)
            if first and not active:
                self._stop_hook_done.set()
            if active:
                self._state = _S.STOPPING
                self._cond.notify_all()
        if not (first and active):
            return
        hook_done = self._stop_hook_done
        try:
            self._emit("service.stopping")
            self.on_stop_requested()
        except Exception as exc:
            self._record_error(exc)
            self._emit("service.on_stop_requested_failed", "error", exc=exc)
        finally:
            hook_done.set()  # teardown waits for this, so the two never overlap

    def _join(self, timeout: float | None) -> bool:
        """Wait for the thread to end; True if it has."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout if timeout is None else max(0.0, timeout))
        return not thread.is_alive()

    def _reset_after_fork(self) -> None:
        """In a forked child: the thread is gone, so the service is not running."""
        was = self._state
        self._reset_runtime()
        if was is not ServiceState.NEW:
            self._state = ServiceState.STOPPED

    # -- the life cycle, in the service thread --------------------------------------------

    def _main(self) -> None:
        attempt = 0
        try:
            while True:
                outcome, exc, ran_for = self._cycle()
                if self._stop_event.is_set():
                    self._transition(_S.STOPPED, "service.stopped")
                    return
                if outcome == _ENDED:
                    self._transition(
                        _S.STOPPED, "service.stopped", reason=str(exc) or "DoNotRestart"
                    )
                    return
                if not self._should_restart(outcome):
                    if outcome == _ERROR:
                        self._transition(
                            _S.FAILED,
                            "service.failed",
                            "error",
                            reason="restart policy",
                            error=repr(exc),
                        )
                    else:
                        self._transition(_S.STOPPED, "service.stopped", reason="run returned")
                    return
                if not self._restart_allowed():
                    self._transition(
                        _S.FAILED,
                        "service.failed",
                        "error",
                        reason=f"over {self.max_restarts} restarts in {self.restart_window:g}s",
                        error=repr(exc),
                    )
                    return
                attempt = 1 if ran_for >= self._backoff.reset_after else attempt + 1
                delay = self._backoff.delay(attempt)
                self._transition(
                    _S.BACKOFF, "service.backoff", "warning", attempt=attempt, delay=round(delay, 3)
                )
                if self._stop_event.wait(delay):
                    self._transition(_S.STOPPED, "service.stopped")
                    return
                self.restarts += 1
        finally:
            self._first_setup_done.set()
            owner = self._owner
            if owner is not None:
                owner._service_ended(self)

    def _should_restart(self, outcome: str) -> bool:
        if self.restart == "never":
            return False
        return self.restart == "always" or outcome == _ERROR

    def _restart_allowed(self) -> bool:
        now = time.monotonic()
        times = self._restart_times
        while times and times[0] <= now - self.restart_window:
            times.popleft()
        if len(times) >= self.max_restarts:
            return False
        times.append(now)
        return True

    def _cycle(self) -> tuple[str, BaseException | None, float]:
        """One setup/run/teardown round: (outcome, exception, seconds run)."""
        self._transition(_S.STARTING, "service.starting", restarts=self.restarts)
        try:
            self.setup()
        except DoNotRestart as exc:
            return _ENDED, exc, 0.0
        except BaseException as exc:
            self._crashed(exc, "setup")
            return _ERROR, exc, 0.0
        finally:
            self._first_setup_done.set()  # what Supervisor.start() waits for
        begun = self._running_since = time.monotonic()
        self._started_at = time.time()
        outcome: tuple[str, BaseException | None] = (_RETURNED, None)
        if not self._stop_event.is_set():
            self._transition(_S.RUNNING, "service.running")
            try:
                self.run()
            except DoNotRestart as exc:
                outcome = (_ENDED, exc)
            except BaseException as exc:
                self._crashed(exc, "run")
                outcome = (_ERROR, exc)
        if self._stop_event.is_set():
            self._stop_hook_done.wait()  # on_stop_requested is running in the stopping thread
        try:
            self.teardown()
        except BaseException as exc:
            self._record_error(exc)
            self._emit("service.teardown_failed", "error", exc=exc)
        self._running_since = None
        return outcome[0], outcome[1], time.monotonic() - begun

    def _crashed(self, exc: BaseException, hook: str) -> None:
        """Anything ``setup``/``run`` raised, BaseExceptions included: counted and logged.

        Plain ``threading`` drops a ``SystemExit`` raised in a thread without a word; here it
        is a crash like any other, and the restart policy decides what follows.
        """
        self.crashes += 1
        self._record_error(exc)
        self._emit("service.crashed", "error", exc=exc, hook=hook)

    def _record_error(self, exc: BaseException) -> None:
        self.last_error = {
            "type": type(exc).__qualname__,
            "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        }

    def _transition(
        self, new: ServiceState, event: str, level: str = "info", **fields: Any
    ) -> None:
        """Change state (thread-safe, waking waiters) and report it.

        Once a stop is requested, the service only moves towards STOPPED or FAILED.
        """
        with self._cond:
            if self._stop_event.is_set() and new in (_S.STARTING, _S.RUNNING, _S.BACKOFF):
                return
            if new is self._state and new is not _S.STARTING:
                return
            self._state = new
            self._cond.notify_all()
        self._emit(event, level, **fields)

    def _emit(
        self, event: str, level: str = "info", exc: BaseException | None = None, **fields: Any
    ) -> None:
        """Log *event* through structlog and hand it to the supervisor's listeners."""
        if exc is not None:
            log_safely(self.log, level, event, exc_info=exc, **fields)
        else:
            log_safely(self.log, level, event, **fields)
        owner = self._owner
        if owner is not None:
            if exc is not None:
                fields = {**fields, "error": repr(exc)}
            owner._dispatch(LifecycleEvent(event, self.name, self._state, time.time(), fields))
