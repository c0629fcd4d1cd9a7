"""``Supervisor``: starts services in order, restarts them by policy, stops them in reverse.

Daemon-safe services run in daemon threads and get a short, bounded grace at stop; critical
services run in non-daemon threads and are joined within the shutdown deadline, so their
teardown runs on every graceful exit path, including the main thread simply returning.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import structlog

from . import _exit
from ._logging import log_safely
from ._signals import SignalHandlers, force_exit
from ._stacks import thread_stack
from .backoff import Backoff
from .errors import ConfigError
from .options import option, validate_options
from .service import Service
from .state import LifecycleEvent, ServiceState

__all__ = ["EXIT_STRAGGLER", "StopReport", "Supervisor", "SupervisorSettings"]

#: Exit code when a critical service still runs past the deadline at interpreter exit.
EXIT_STRAGGLER = 70

Listener = Callable[[LifecycleEvent], Any]


class SupervisorSettings:
    """The ``supervisor`` section: the keyword options of ``Supervisor``."""

    shutdown_timeout: float = option(10.0, gt=0, help="Seconds to stop critical services.")
    daemon_grace: float = option(0.5, ge=0, help="Seconds daemon-safe services get at stop.")
    failure_policy: Literal["isolate", "shutdown"] = option(
        "isolate", help="isolate: others go on; shutdown: a FAILED service stops everything."
    )
    stop_at_exit: bool = option(True, help="Stop gracefully when the main thread finishes.")


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
    #: True when this call did not do the stop (another thread is doing it).
    in_progress: bool = False

    @property
    def clean(self) -> bool:
        return not self.stragglers and not self.in_progress


class Supervisor:
    """Runs services in threads of the right kind and stops them cleanly.

    >>> with Supervisor([MyService()]) as sup:   # doctest: +SKIP
    ...     sup.wait_running(timeout=5)
    """

    def __init__(
        self,
        services: Iterable[Service] = (),
        *,
        shutdown_timeout: float = 10.0,
        daemon_grace: float = 0.5,
        failure_policy: Literal["isolate", "shutdown"] = "isolate",
        stop_at_exit: bool = True,
        backoff: Backoff | None = None,
    ) -> None:
        settings, problems = validate_options(
            SupervisorSettings,
            {
                "shutdown_timeout": shutdown_timeout,
                "daemon_grace": daemon_grace,
                "failure_policy": failure_policy,
                "stop_at_exit": stop_at_exit,
            },
            resolve=None,
        )
        if problems:
            raise ConfigError(problems)
        self.shutdown_timeout: float = settings["shutdown_timeout"]
        self.daemon_grace: float = settings["daemon_grace"]
        self.failure_policy: Literal["isolate", "shutdown"] = settings["failure_policy"]
        self.stop_at_exit: bool = settings["stop_at_exit"]
        self.backoff = backoff or Backoff()
        self.log: Any = structlog.get_logger("bgservices")
        self._services: dict[str, Service] = {}
        self._listeners: list[Listener] = []
        self._init_runtime()
        for service in services:
            self.add(service)
        _exit.remember(self)

    def _init_runtime(self) -> None:
        self._lock = threading.RLock()
        self._phase: Literal["idle", "running", "stopping", "stopped"] = "idle"
        self._stop_done = threading.Event()
        self._stop_done.set()
        self._wakeup = threading.Event()
        self._report: StopReport | None = None
        self._failure_shutdown = False
        self._in_run = False
        self._signals: SignalHandlers | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, allow_imports: bool = True) -> Supervisor:
        """Build a supervisor from a plain dict; see ``bgservices.from_config``."""
        from .config import from_config

        return from_config(config, allow_imports=allow_imports)

    # -- services ------------------------------------------------------------------------

    def add(self, service: Service) -> Service:
        """Add *service*; if the supervisor is running, start it now."""
        if not isinstance(service, Service):
            raise TypeError(f"expected a Service, got {type(service).__name__}")
        with self._lock:
            if service.name in self._services:
                raise ValueError(f"a service named {service.name!r} is already supervised")
            self._services[service.name] = service
            running = self._phase == "running"
        if running:
            self._launch(service)
        return service

    def remove(self, name: str) -> Service:
        """Stop the service called *name* (within ``shutdown_timeout``) and forget it."""
        service = self[name]
        self._stop_one(service)
        with self._lock:
            del self._services[name]
        return service

    def restart(self, name: str) -> None:
        """Stop the service called *name* and start it again in a new thread."""
        service = self[name]
        with self._lock:
            if self._phase != "running":
                raise RuntimeError("the supervisor is not running")
        self._stop_one(service)
        self._launch(service)

    def __getitem__(self, name: str) -> Service:
        try:
            return self._services[name]
        except KeyError:
            raise KeyError(f"no service named {name!r}") from None

    def __iter__(self) -> Iterator[Service]:
        return iter(list(self._services.values()))

    def __len__(self) -> int:
        return len(self._services)

    # -- status --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._phase == "running"

    @property
    def healthy(self) -> bool:
        """True while running with every critical service RUNNING."""
        return self._phase == "running" and all(
            s.state is ServiceState.RUNNING for s in self if not s.daemon
        )

    def status(self) -> dict[str, dict[str, Any]]:
        """Every service's ``status()``, by name, in start order."""
        return {s.name: s.status() for s in self}

    def wait_running(self, timeout: float | None = None) -> bool:
        """Block until every service is RUNNING; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for service in self:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not service.wait_for_state(ServiceState.RUNNING, timeout=remaining):
                return False
        return True

    # -- listeners -----------------------------------------------------------------------

    def add_listener(self, callback: Listener) -> None:
        """Call *callback* with every ``LifecycleEvent``, in the thread where it happens."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        self._listeners.remove(callback)

    def _dispatch(self, event: LifecycleEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as exc:
                log_safely(
                    self.log, "error", "listener.failed", listener=repr(listener), exc_info=exc
                )

    def _emit(self, event: str, level: str = "info", **fields: Any) -> None:
        log_safely(self.log, level, event, **fields)
        self._dispatch(LifecycleEvent(event, None, None, time.time(), fields))

    # -- start ---------------------------------------------------------------------------

    def start(self) -> Supervisor:
        """Start every service in the order added; return once each one's setup() has ended."""
        with self._lock:
            if self._phase == "running":
                return self
            if self._phase == "stopping":
                raise RuntimeError("the supervisor is stopping")
            self._phase = "running"
            self._report = None
            self._failure_shutdown = False
            if not self._in_run:  # run() cleared it before its signal handlers went in
                self._wakeup.clear()
            services = list(self._services.values())
        if self.stop_at_exit:
            _exit.track(self)
        self._emit("supervisor.starting", services=[s.name for s in services])
        for service in services:
            if self._phase != "running" or self._wakeup.is_set():
                break  # a stop (a signal, request_stop, a failure) arrived while starting
            self._launch(service)
        self._emit("supervisor.started")
        return self

    def _launch(self, service: Service) -> None:
        service._launch(self, self.backoff)
        # Short waits, so that a signal reaches the main thread while a setup() is slow.
        while not service._first_setup_done.wait(0.25):
            if self._phase != "running" or self._wakeup.is_set():
                return

    # -- stop ----------------------------------------------------------------------------

    def stop(self, timeout: float | None = None) -> StopReport:
        """Stop every service in reverse start order within *timeout* (``shutdown_timeout``).

        Critical services are joined one by one; daemon-safe services then get
        ``daemon_grace`` seconds. Whatever still runs is a straggler: logged with its
        stack and named in the report, never waited on further. Safe to call twice, from
        several threads at once, or from inside a service.
        """
        timeout = self.shutdown_timeout if timeout is None else timeout
        me = threading.current_thread()
        with self._lock:
            phase = self._phase
            if phase in ("idle", "stopped"):
                return self._report or StopReport()
            if phase == "running":
                self._phase = "stopping"
                self._stop_done.clear()
            services = list(self._services.values())
        if phase == "stopping":  # another thread is stopping; wait for it unless it waits for us
            if any(s.thread is me for s in services):
                return StopReport(in_progress=True)
            self._stop_done.wait(timeout + self.daemon_grace)
            return self._report or StopReport(in_progress=True)
        try:
            report = self._stop_all(services, timeout, me)
        finally:
            with self._lock:
                self._phase = "stopped"
            self._stop_done.set()
            self._wakeup.set()
        return report

    def _stop_all(
        self, services: list[Service], timeout: float, me: threading.Thread
    ) -> StopReport:
        begun = time.monotonic()
        deadline = begun + timeout
        self._emit("supervisor.stopping", timeout=timeout)
        in_order = services[::-1]
        try:
            for index, service in enumerate(in_order):
                service._request_stop()
                if service.daemon or service.thread is me:
                    continue
                if not service._join(deadline - time.monotonic()):
                    for rest in in_order[index + 1 :]:  # past the deadline: ask all at once
                        rest._request_stop()
                    break
        except BaseException:  # e.g. KeyboardInterrupt in a join: leave nothing running unasked
            for service in in_order:
                service._request_stop()
            raise
        grace_end = time.monotonic() + self.daemon_grace
        for service in in_order:
            if service.thread is not me:
                service._join(grace_end - time.monotonic())
        still_running = [s for s in services if self._alive(s, me)]
        for service in still_running:
            assert service.thread is not None
            self._emit(
                "supervisor.abandoned" if service.daemon else "supervisor.straggler",
                "warning" if service.daemon else "error",
                service=service.name,
                state=service.state.value,
                stack=thread_stack(service.thread),
            )
        report = StopReport(
            stopped=tuple(s.name for s in services if s not in still_running),
            stragglers=tuple(s.name for s in still_running if not s.daemon),
            abandoned=tuple(s.name for s in still_running if s.daemon),
            elapsed=time.monotonic() - begun,
        )
        self._report = report
        if not report.stragglers:
            _exit.untrack(self)  # a critical straggler still needs the exit hook
        self._emit(
            "supervisor.stopped",
            elapsed=round(report.elapsed, 4),
            stragglers=list(report.stragglers),
            abandoned=list(report.abandoned),
        )
        return report

    @staticmethod
    def _alive(service: Service, me: threading.Thread) -> bool:
        thread = service.thread
        return thread is not None and thread is not me and thread.is_alive()

    def _stop_one(self, service: Service) -> None:
        service._request_stop()
        if not service._join(self.shutdown_timeout):
            assert service.thread is not None
            self._emit(
                "supervisor.straggler",
                "warning" if service.daemon else "error",  # a daemon-safe one may be abandoned
                service=service.name,
                stack=thread_stack(service.thread),
            )
            raise RuntimeError(
                f"service {service.name!r} did not stop within {self.shutdown_timeout:g}s"
            )

    def _stop_at_exit(self) -> None:
        """Called by the exit hook: stop gracefully; a critical straggler ends the process."""
        deadline = time.monotonic() + self.shutdown_timeout + self.daemon_grace
        self._emit("supervisor.exit", reason="main thread finished")
        me = threading.current_thread()
        try:
            self.stop()
            for service in [s for s in self if not s.daemon and self._alive(s, me)]:
                service._join(deadline - time.monotonic())
        except KeyboardInterrupt:  # Ctrl-C while the exit waits on a service: the operator insists
            force_exit(signal.SIGINT)
        stuck = [s for s in self if not s.daemon and self._alive(s, me)]
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
        _exit.untrack(self)

    # -- service callbacks (in service threads) ---------------------------------------------

    def _service_ended(self, service: Service) -> None:
        if self._phase == "stopped" and service.name in (self._report or StopReport()).stragglers:
            me = threading.current_thread()
            if not any(not s.daemon and self._alive(s, me) for s in self):
                _exit.untrack(self)  # the last critical straggler has finished after all
            return
        if (
            service.state is ServiceState.FAILED
            and self.failure_policy == "shutdown"
            and self._phase == "running"
        ):
            self._failure_shutdown = True
            self._emit("supervisor.failure_shutdown", "error", service=service.name)
            self.stop()
        elif all(s.state.ended for s in self):
            self._wakeup.set()

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
        self._wakeup.clear()
        self._in_run = True
        if threading.current_thread() is threading.main_thread():
            restore = self.install_signal_handlers()
        try:
            self.start()
            while not self._wakeup.wait(0.25):
                pass
            report = self.stop()
        finally:
            self._in_run = False
            if restore is not None and (report is None or not report.stragglers):
                restore()
        failed = any(s.state is ServiceState.FAILED and not s.daemon for s in self)
        return 1 if self._failure_shutdown or failed or not report.clean else 0

    def request_stop(self) -> None:
        """Ask ``run()`` to stop and return; safe from any thread or a signal handler."""
        self._wakeup.set()

    def install_signal_handlers(self) -> Callable[[], None]:
        """Handle SIGINT/SIGTERM (main thread only); returns a function restoring the old ones.

        Inside ``run()`` the first signal makes ``run()`` stop and return. Outside it, the first
        SIGINT raises ``KeyboardInterrupt`` and the first SIGTERM raises ``SystemExit(143)`` in
        the main thread, so the application unwinds and the exit hook stops the services.
        A second signal logs every thread's stack and exits at once with 128+signum.
        """
        handlers = SignalHandlers(self._on_signal)
        handlers.install()
        self._signals = handlers
        return handlers.restore

    def _on_signal(self, signum: int) -> None:
        self._emit("supervisor.signal", "warning", signal=signal.Signals(signum).name)
        if self._in_run:
            self._wakeup.set()
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(128 + signum)

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
        return f"<Supervisor {self._phase} services={list(self._services)}>"

    # -- fork ------------------------------------------------------------------------------

    def _reset_after_fork(self) -> None:
        """In a forked child: no thread survived, so nothing runs and nothing needs stopping."""
        self._init_runtime()
        for service in self._services.values():
            service._reset_after_fork()
