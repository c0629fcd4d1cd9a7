"""Helpers for testing services: captured events, a supervised block, a fake clock, ticks.

``capture_events()`` collects what bgservices reports (lifecycle and health events) as plain
dicts, like ``structlog.testing.capture_logs``. ``supervised()`` runs services under a
supervisor for the length of a ``with`` block and fails if they do not stop cleanly.
``FakeClock`` is a clock a test advances by hand: periodic ticks, jitter, backoff delays and
restart windows of thread and async services follow it with no real sleeping. ``run_ticks()``
runs a periodic service's ticks in the calling thread. ``hygiene()`` fails a block that
leaves a service thread or a changed signal handler behind. The pytest plugin
(``bgservices_*`` fixtures) is built on these.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import signal
import threading
from collections.abc import Callable, Iterator
from time import monotonic as _real_now
from typing import Any, Literal, TypeVar

from ._clock import Clock, Timer
from ._logging import EventMessage
from .aio import AsyncPeriodicService
from .backoff import Backoff
from .errors import DoNotRestart
from .periodic import PeriodicService
from .service import Service, full_repr
from .supervisor import Supervisor

__all__ = [
    "CapturedEvents",
    "FakeClock",
    "capture_events",
    "hygiene",
    "leftover_threads",
    "run_ticks",
    "supervised",
]

#: The logger every bgservices event goes through (its children: supervisor, service, built-ins).
_ROOT = "bgservices"
#: Deadlines this close past an advance's target still fire: float rounding, not intent.
_SNAP = 1e-9
#: How often a settling advance looks whether a woken thread has ended (it cannot be told).
_POLL = 0.005

_T = TypeVar("_T")


# -- events -------------------------------------------------------------------------------


class CapturedEvents(list[dict[str, Any]]):
    """The events captured so far, oldest first, as dicts: ``event``, ``log_level``,
    ``timestamp`` (``time.time()`` when it was logged), the event's fields (``service``,
    ``reason``, ...), and for an event that carried an exception, ``error`` (its repr) and
    ``exc_info`` (the exception itself). A list: events arrive from service threads, so wait
    for one with ``wait_for``."""

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()

    def _add(self, event: dict[str, Any]) -> None:
        with self._cond:
            self.append(event)
            self._cond.notify_all()

    def names(self, service: str | None = None) -> list[str]:
        """The event names, of one *service* if given."""
        with self._cond:
            return [e["event"] for e in self if service is None or e.get("service") == service]

    def matching(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The events named *event* (any, if None) whose fields equal *fields*."""
        with self._cond:
            return [e for e in self if _matches(e, event, fields)]

    def wait_for(
        self,
        event: str | None = None,
        *,
        timeout: float = 5.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """The first event named *event* with *fields* (and for which *where* is true, if
        given), waiting up to *timeout* seconds for it; ``AssertionError`` (naming what was
        seen) if it does not come."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [
                e for e in self if _matches(e, event, fields) and (where is None or where(e))
            ]
            return bool(found)

        with self._cond:
            if not self._cond.wait_for(seen, timeout):
                raise AssertionError(
                    f"no event {event or '*'} {fields or ''} within {timeout:g}s; "
                    f"seen: {[e['event'] for e in self]}"
                )
            return found[0]


def _matches(event: dict[str, Any], name: str | None, fields: dict[str, Any]) -> bool:
    return (name is None or event["event"] == name) and all(
        key in event and event[key] == value for key, value in fields.items()
    )


def _as_dict(record: logging.LogRecord) -> dict[str, Any]:
    message = record.msg
    if isinstance(message, EventMessage):
        name, fields = message.event, dict(message.fields)
    else:  # a plain logging call under the bgservices tree
        name, fields = record.getMessage(), {}
    event: dict[str, Any] = {
        "event": name,
        "log_level": record.levelname.lower(),
        "timestamp": record.created,
    }
    event.update((k, v) for k, v in fields.items() if k not in event)
    if record.exc_info and record.exc_info[1] is not None:
        event["error"] = full_repr(record.exc_info[1])  # as listeners get it
        event["exc_info"] = record.exc_info[1]
    return event


class _Tap(logging.Handler):
    """The one handler on the ``bgservices`` logger while any capture is active.

    During a capture the tree's loggers are lowered to the capture's level, so nothing is
    missed, and the tree does not propagate: this handler passes on to the root's handlers
    exactly the records they would have had without the capture, judged by the levels set
    before it (or set by the test since, ``caplog.set_level`` say).
    """

    def __init__(self, level: int) -> None:
        super().__init__(logging.NOTSET)
        self.lowered_to = level
        self.sinks: list[CapturedEvents] = []
        self.saved: dict[str, int] = {}  # logger name -> level before the capture
        self.propagate = True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # The application's handlers first, then the captures: as listeners come after
            # logging, a test woken by an event finds the record already handled.
            if self.propagate and record.levelno >= self._level_without_us(record.name):
                logging.getLogger().callHandlers(record)
            event = _as_dict(record)
            for sink in list(self.sinks):
                sink._add(event)
        except Exception:
            self.handleError(record)

    def _level_without_us(self, name: str) -> int:
        loggers = logging.Logger.manager.loggerDict
        while name != _ROOT_PARENT:
            logger = loggers.get(name)
            level = logger.level if isinstance(logger, logging.Logger) else logging.NOTSET
            if name in self.saved and level == self.lowered_to:
                level = self.saved[name]  # still the level the capture set: the one before
            if level != logging.NOTSET:
                return level
            name = name.rpartition(".")[0] or _ROOT_PARENT
        return logging.getLogger().level


_ROOT_PARENT = ""
_tap_lock = threading.Lock()
_tap: _Tap | None = None


def _tree() -> list[logging.Logger]:
    """The ``bgservices`` logger and every existing logger below it."""
    loggers = [logging.getLogger(_ROOT)]
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith(_ROOT + ".") and isinstance(logger, logging.Logger):
            loggers.append(logger)
    return loggers


def _open_tap(sink: CapturedEvents, level: int | None) -> None:
    global _tap
    with _tap_lock:
        if _tap is None:
            # One below the level asked for: a level the test sets meanwhile (caplog's, even
            # DEBUG) can then be told from ours, and judges what the root's handlers get.
            lowered = None if level is None else max(level - 1, 1)
            tap = _Tap(logging.DEBUG if lowered is None else lowered)
            top = logging.getLogger(_ROOT)
            tap.propagate, top.propagate = top.propagate, False
            for logger in _tree():
                tap.saved[logger.name] = logger.level
                if lowered is not None and (
                    logger.level == logging.NOTSET or logger.level > lowered
                ):
                    logger.setLevel(lowered)
            top.addHandler(tap)
            _tap = tap
        _tap.sinks.append(sink)


def _close_tap(sink: CapturedEvents) -> None:
    global _tap
    with _tap_lock:
        tap = _tap
        if tap is None:
            return
        tap.sinks.remove(sink)
        if tap.sinks:
            return
        top = logging.getLogger(_ROOT)
        top.removeHandler(tap)
        top.propagate = tap.propagate
        for logger in _tree():  # loggers made during the capture stay as they are
            if logger.name in tap.saved:
                logger.setLevel(tap.saved[logger.name])
        _tap = None


@contextlib.contextmanager
def capture_events(level: int | None = logging.DEBUG) -> Iterator[CapturedEvents]:
    """Collect every event bgservices reports inside the block, of every supervisor and
    service, as dicts: ``{"event": "service.crashed", "log_level": "error", "timestamp":
    1700000000.0, "service": "poller", "hook": "run", "error": "ValueError('boom')",
    "exc_info": ValueError('boom')}``.

    Nothing needs wiring: it listens on the ``bgservices`` logger tree, lowered to *level*
    for the block (DEBUG: the per-service lifecycle events too; None: levels untouched), and
    puts levels, handlers and propagation back afterwards. The application's own handlers
    receive what they would have without it. Captures may nest (the first one's *level*
    holds). Lowering the level can change what is reported: the supervisor adds a stack to
    ``supervisor.abandoned`` only when DEBUG is on.
    """
    sink = CapturedEvents()
    _open_tap(sink, level)
    try:
        yield sink
    finally:
        _close_tap(sink)


# -- threads and signal handlers --------------------------------------------------------------


def leftover_threads(join_timeout: float = 2.0) -> list[str]:
    """Names of ``bgservices:`` threads still alive after up to *join_timeout* seconds."""
    threads = [t for t in threading.enumerate() if t.name.startswith("bgservices:")]
    deadline = _real_now() + join_timeout
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - _real_now()))
    return [t.name for t in threads if t.is_alive()]


@contextlib.contextmanager
def hygiene(join_timeout: float = 2.0) -> Iterator[None]:
    """Fail (``AssertionError``) if the block leaves a ``bgservices:`` thread running (after
    *join_timeout* seconds' grace) or a SIGINT/SIGTERM handler other than it found."""
    signums = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.getsignal(s) for s in signums}
    yield
    alive = leftover_threads(join_timeout)
    changed = [s.name for s in signums if signal.getsignal(s) is not before[s]]
    assert not alive, f"bgservices threads left running: {alive}"
    assert not changed, f"signal handlers left changed: {changed}"


# -- supervised ---------------------------------------------------------------------------


@contextlib.contextmanager
def supervised(
    *services: Service,
    timeout: float = 10.0,
    clock: Clock | None = None,
    backoff: Backoff | None = None,
    shutdown_timeout: float = 5.0,
    daemon_grace: float = 0.5,
    failure_policy: Literal["isolate", "shutdown"] = "isolate",
) -> Iterator[Supervisor]:
    """Run *services* under a started ``Supervisor`` for the block; stop it after.

    Before the block, waits up to *timeout* seconds until every service is running (ready,
    where the supervisor knows readiness); ``AssertionError`` with their states if one is
    not. After it, stops the supervisor and raises ``AssertionError`` if the stop was not
    clean: a straggler, an abandoned daemon-safe service, or a thread of these services
    still alive. An exception from the
    block itself is raised unchanged (the stop still happens). *clock* is a ``FakeClock``
    (or any clock); the other keywords are the supervisor's.
    """
    sup = Supervisor(
        services,
        shutdown_timeout=shutdown_timeout,
        daemon_grace=daemon_grace,
        failure_policy=failure_policy,
        backoff=backoff,
        clock=clock,
    )
    try:
        sup.start()
        up = sup.wait_ready(timeout)
        if not up:
            states = {s.name: s.state.value for s in sup}
            raise AssertionError(f"services not running within {timeout:g}s: {states}")
        yield sup
    except BaseException as exc:
        problem = _stop_cleanly(sup, services)
        if problem:
            exc.add_note(problem)
        raise
    problem = _stop_cleanly(sup, services)
    if problem:
        raise AssertionError(problem)


def _stop_cleanly(sup: Supervisor, services: tuple[Service, ...]) -> str:
    """Stop *sup*; what was not clean about it ("" if all was)."""
    report = sup.stop()
    problems = []
    if report.stragglers:
        problems.append(f"stragglers {list(report.stragglers)}")
    if report.abandoned:
        problems.append(f"abandoned (daemon-safe, still running) {list(report.abandoned)}")
    late = set(report.stragglers) | set(report.abandoned)  # named already: not waited for
    names = {f"bgservices:{s.name}" for s in services if s.name not in late}
    names |= {f"{n}:on-stop" for n in names}
    mine = [t for t in threading.enumerate() if t.name in names]
    deadline = _real_now() + 1.0  # they have left their life cycle: only the return remains
    for thread in mine:
        thread.join(max(0.0, deadline - _real_now()))
    alive = [t.name for t in mine if t.is_alive()]
    if alive:
        problems.append(f"threads still alive {alive}")
    return f"the supervisor did not stop cleanly: {'; '.join(problems)}" if problems else ""


# -- the fake clock -------------------------------------------------------------------------


class _Wait:
    """A timed wait in progress on a ``FakeClock``: of a thread, or an event loop's timer.

    *owner* is what the wait holds up (the thread, or the task that made the timer): an
    advance that wakes it waits until the owner waits on the clock again, or has ended.
    """

    __slots__ = ("deadline", "owner", "woken")

    def __init__(self, deadline: float, owner: threading.Thread | asyncio.Task[Any] | None):
        self.deadline = deadline
        self.owner = owner
        self.woken = False

    def wake(self) -> None:
        raise NotImplementedError


class _ThreadWait(_Wait):
    """A thread in ``FakeClock.wait_for``, on *cond*."""

    __slots__ = ("cond",)

    def __init__(self, deadline: float, cond: threading.Condition) -> None:
        super().__init__(deadline, threading.current_thread())
        self.cond = cond

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()


class _Timer(_Wait):
    """``FakeClock.call_later``'s timer: when time reaches it, *callback(arg)* is put on *loop*.
    It is also the handle returned, so ``cancel()`` takes it off the clock."""

    __slots__ = ("arg", "callback", "clock", "loop")

    def __init__(
        self,
        clock: FakeClock,
        deadline: float,
        loop: asyncio.AbstractEventLoop,
        callback: Callable[[Any], object],
        arg: Any,
    ) -> None:
        super().__init__(deadline, asyncio.current_task(loop))
        self.clock, self.loop, self.callback, self.arg = clock, loop, callback, arg

    def cancel(self) -> None:
        self.clock._drop(self)

    def wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # its loop is closed: it would never have run
            self.clock._drop(self)

    def _run(self) -> None:
        if self.clock._drop(self):  # not cancelled meanwhile
            self.callback(self.arg)


def _alive(owner: threading.Thread | asyncio.Task[Any]) -> bool:
    return owner.is_alive() if isinstance(owner, threading.Thread) else not owner.done()


def _named(owner: threading.Thread | asyncio.Task[Any]) -> str:
    return owner.name if isinstance(owner, threading.Thread) else f"task {owner.get_name()}"


class _Chosen(random.Random):
    """A ``Random`` whose ``uniform`` is the test's function."""

    def __init__(self, uniform: Callable[[float, float], float]) -> None:
        super().__init__(0)
        self._chosen = uniform

    def uniform(self, a: float, b: float) -> float:
        return self._chosen(a, b)


class FakeClock:
    """A clock that moves only when the test calls ``advance()``: give it to a supervisor
    (``Supervisor(clock=...)``, ``supervised(..., clock=...)``) and services' ticks, waits,
    backoff delays and restart windows follow it, with no real sleeping, for thread and
    async services alike.

    ``advance(seconds)`` moves time forward one due wait at a time, in deadline order: each
    thread (or task, for an async service) whose wait is due wakes, and the advance waits (up
    to *settle_timeout* real seconds) until it waits on this clock again or ends, before
    moving on. So ``advance(30)`` on a 10-second ticker runs exactly three ticks, and they
    have run when it returns. A thread or task that blocks elsewhere instead (real I/O, a
    lock) makes it raise ``TimeoutError``. On the event loop of the services it must wake it
    raises ``RuntimeError`` (that loop could not run them while it waits): in an async test,
    ``await asyncio.to_thread(clock.advance, 30)``.

    Randomness is the clock's too: services draw jitter and backoff delays from
    ``clock.random`` (``random.Random(seed)``), so a run is the same every time; pass
    ``uniform=`` to choose the draws yourself (``uniform=lambda low, high: high``: always
    the longest delay).
    """

    def __init__(
        self,
        start: float = 0.0,
        *,
        wall: float = 1_700_000_000.0,
        seed: int = 0,
        uniform: Callable[[float, float], float] | None = None,
        settle_timeout: float = 5.0,
    ) -> None:
        self._now = float(start)
        self._wall_offset = wall - self._now
        self.random: random.Random = random.Random(seed) if uniform is None else _Chosen(uniform)
        self.settle_timeout = settle_timeout
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waits: list[_Wait] = []

    # -- the Clock protocol --

    def monotonic(self) -> float:
        """The fake monotonic time, in seconds."""
        return self._now

    def time(self) -> float:
        """The fake wall-clock time: *wall* at the start, moving with ``monotonic()``."""
        return self._wall_offset + self._now

    def wait_for(
        self, cond: threading.Condition, predicate: Callable[[], bool], timeout: float | None
    ) -> bool:
        """``cond.wait_for(predicate, timeout)`` with *timeout* in fake seconds; *cond* is held.

        A notify of *cond* (a stop request) wakes it at once, as with a real clock.
        """
        result = predicate()
        if result or (timeout is not None and timeout <= 0):
            return result
        with self._lock:
            wait = _ThreadWait(self._deadline(timeout), cond)
            self._waits.append(wait)
            self._changed.notify_all()
        try:
            while True:
                result = predicate()
                if result or self._now >= wait.deadline:
                    return result
                cond.wait()
        finally:
            self._drop(wait)

    def call_later(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        callback: Callable[[_T], object],
        arg: _T,
        /,
    ) -> Timer:
        """Run ``callback(arg)`` on *loop* once ``advance()`` reaches *delay* fake seconds from
        now (at the loop's next turn if *delay* <= 0); call it on *loop*'s thread. The handle's
        ``cancel()`` takes it off the clock."""
        if not delay > 0:
            return loop.call_soon(callback, arg)
        with self._lock:
            timer = _Timer(self, self._deadline(delay), loop, callback, arg)
            self._waits.append(timer)
            self._changed.notify_all()
        return timer

    def _deadline(self, timeout: float | None) -> float:
        """When a wait of *timeout* begun now is due; the lock is held."""
        if timeout is None:
            return math.inf
        # strictly later than now, so that a wait never ends before time moves
        return max(self._now + timeout, math.nextafter(self._now, math.inf))

    def _drop(self, wait: _Wait) -> bool:
        """Take *wait* off the clock; whether it was still on."""
        with self._lock:
            try:
                self._waits.remove(wait)
            except ValueError:
                return False
            self._changed.notify_all()
            return True

    # -- for the test --

    @property
    def sleepers(self) -> int:
        """How many timed waits on this clock are in progress (and not yet woken by time):
        of threads and of event loops' timers. A wait with no timeout is not counted: time
        does not end it (though an advance counts its thread as back on the clock)."""
        with self._lock:
            return self._sleeping()

    def _sleeping(self) -> int:
        return sum(1 for w in self._waits if not w.woken and w.deadline < math.inf)

    @property
    def next_deadline(self) -> float | None:
        """When the earliest timed wait in progress is due; None if there is none."""
        with self._lock:
            due = [w.deadline for w in self._waits if not w.woken and w.deadline < math.inf]
            return min(due, default=None)

    def wait_for_sleepers(self, count: int = 1, timeout: float = 5.0) -> None:
        """Block (real time, up to *timeout*) until *count* timed waits on this clock are in
        progress: the services reached the point where only time moves them on.
        ``TimeoutError`` if they do not."""
        with self._changed:
            ok = self._changed.wait_for(lambda: self._sleeping() >= count, timeout)
        if not ok:
            raise TimeoutError(f"{self.sleepers} of {count} waits on the clock after {timeout:g}s")

    def advance(self, seconds: float) -> None:
        """Move time *seconds* forward, waking due waits in deadline order (see the class)."""
        if not seconds >= 0:
            raise ValueError(f"advance() needs seconds >= 0, got {seconds!r}")
        with self._lock:
            target = self._now + seconds
        here = _running_loop()
        while True:
            with self._lock:
                due = [w for w in self._waits if not w.woken and w.deadline <= target + _SNAP]
                if not due:
                    self._now = max(self._now, target)
                    return
                _refuse_own_loop(due, here)
                self._now = max(self._now, min(w.deadline for w in due))
                woken = [w for w in due if w.deadline <= self._now]
                for wait in woken:
                    wait.woken = True
            for wait in woken:
                wait.wake()
            self._settle(woken)

    def _settle(self, woken: list[_Wait]) -> None:
        """Until every woken wait has ended and its owner waits on this clock again, or has
        ended (a timer made outside a task: until its callback ran)."""
        me = threading.current_thread()
        owners = {w.owner for w in woken if w.owner is not None and w.owner is not me}
        deadline = _real_now() + self.settle_timeout

        def unsettled() -> list[str]:
            if any(w in self._waits for w in woken):  # a woken wait has not returned yet
                return [_named(o) for o in owners if _alive(o)] or ["a timer's callback"]
            sleeping = {w.owner for w in self._waits if not w.woken}
            return [_named(o) for o in owners if o not in sleeping and _alive(o)]

        with self._changed:
            while busy := unsettled():
                left = deadline - _real_now()
                if left <= 0:
                    raise TimeoutError(
                        f"{sorted(busy)} did not come back to wait on the clock within "
                        f"{self.settle_timeout:g}s: blocked on something else?"
                    )
                self._changed.wait(min(left, _POLL))  # an end wakes nobody: look again


def _refuse_own_loop(due: list[_Wait], here: asyncio.AbstractEventLoop | None) -> None:
    """``RuntimeError`` if a due timer is on *here*, the loop ``advance()`` blocks."""
    if here is not None and any(isinstance(w, _Timer) and w.loop is here for w in due):
        raise RuntimeError(
            "advance() on the event loop whose tasks it must run: call it from another "
            "thread (await asyncio.to_thread(clock.advance, seconds))"
        )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# -- ticks in the calling thread ------------------------------------------------------------


def run_ticks(
    service: PeriodicService, n: int, *, clock: FakeClock | None = None
) -> dict[str, Any]:
    """Run ``setup()``, *n* ticks and ``teardown()`` of *service* in the calling thread, with
    no supervisor and no waiting between ticks; return its ``status()``. An
    ``AsyncPeriodicService`` runs them on a fresh event loop (``asyncio.run``), so call it
    where no loop runs.

    Ticks go through the service's own bookkeeping (``ticks``, ``errors``, the
    ``service.tick_failed`` event), but the first tick that raises ends the run: teardown
    runs, then its exception is raised here, so a test sees the real error.
    ``DoNotRestart`` ends the ticking quietly, as it would in a supervisor. With *clock*,
    the service reads it and it is advanced by ``interval`` between ticks.
    """
    if not isinstance(service, PeriodicService):
        raise TypeError(f"run_ticks() needs a PeriodicService, got {type(service).__name__}")
    if n < 0:
        raise ValueError(f"run_ticks() needs n >= 0, got {n}")
    service._prepare_launch(service._backoff, clock or service._clock)
    if isinstance(service, AsyncPeriodicService):
        asyncio.run(_run_async_ticks(service, n, clock))
        return service.status()
    service.setup()
    try:
        for index in range(n):
            if index and clock is not None:
                clock.advance(service.interval)
            begun = service._tick_begins()
            try:
                service.tick()
            except Exception as exc:
                if not _tick_done(service, begun, exc):
                    break
            else:
                _tick_done(service, begun, None)
    finally:
        service.teardown()
    return service.status()


async def _run_async_ticks(service: AsyncPeriodicService, n: int, clock: FakeClock | None) -> None:
    """``run_ticks`` on the running loop, awaiting the hooks."""
    await service.setup()
    try:
        for index in range(n):
            if index and clock is not None:
                clock.advance(service.interval)
            begun = service._tick_begins()
            try:
                await service.tick()
            except Exception as exc:
                if not _tick_done(service, begun, exc):
                    break
            else:
                _tick_done(service, begun, None)
    finally:
        await service.teardown()


def _tick_done(service: PeriodicService, begun: float, exc: Exception | None) -> bool:
    """The service's bookkeeping after a tick that raised *exc* (None: it returned); False
    after ``DoNotRestart``. A tick's exception is counted and logged as in the service
    thread, then raised."""
    try:
        if exc is None:
            service.consecutive_errors = 0
        elif isinstance(exc, DoNotRestart):
            return False
        else:
            with contextlib.suppress(Exception):  # past max_consecutive_errors it re-raises
                service._tick_failed(exc)
            raise exc
    finally:
        service._tick_ended(begun)
    return True
