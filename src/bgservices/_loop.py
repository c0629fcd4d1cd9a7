"""Where async services run: a loop of the supervisor's own or the caller's, and a watchdog.

A ``Place`` is one event loop with its thread and the async services' tasks on it. On the
supervisor's own loop (``LoopHost``) it is made on the first launch and ends by itself once
the last task on it has ended (a relaunch makes a new one), so nothing is left behind.

The ``Watchdog`` times every step of the services' tasks (each resumption of their
coroutines, tick included): one that holds the loop longer than a threshold is reported
once, with the loop thread's stack taken while it is still stuck. It wakes at most once per
threshold while steps run, and its thread ends once no step has run for ``_LINGER`` seconds
(the next step starts another), so an idle loop costs no CPU and no thread beyond its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import Any, Protocol

from ._deadlines import LINGER as _LINGER
from ._stacks import thread_stack
from ._thread_stack import default_stack

__all__ = ["LoopHost", "Loops", "Place", "Timed", "Watchdog"]

#: The longest a batched post waits for the rest of its burst (see ``Place.post_batched``).
_BURST = 0.01


class Watched(Protocol):
    """What the watchdog tells about a step that holds the loop."""

    def _loop_was_blocked(self, seconds: float, stack: str) -> None: ...


class Watchdog:
    """Reports, once per step, a step of a watched task that holds its loop longer than that
    task's own threshold; it wakes at most once per the lowest threshold while steps run.

    Its thread starts with the first step and ends after ``_LINGER`` seconds without one.
    """

    def __init__(self, thread: threading.Thread, threshold: float) -> None:
        self.loop_thread, self.threshold = thread, threshold
        self._cond = threading.Condition(threading.Lock())
        self._since: float | None = None  # when the current step began; None between steps
        self._who: Watched | None = None
        self._limit = threshold  # the current step's own threshold
        self._steps = 0
        self._seen = 0  # _steps at the last look
        self._reported = -1
        self._asleep = False
        self._running = False  # a watching thread is alive, or being started (under _cond)
        self._closed = False
        self._name = f"bgservices:{thread.name.removeprefix('bgservices:')}:watchdog"

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def watch_every(self, threshold: float) -> None:
        """A task with *threshold* comes: wake at least that often (a sleep under way too)."""
        with self._cond:
            if threshold < self.threshold:
                self.threshold = threshold
                self._cond.notify_all()

    # -- in the loop thread: cheap, unless the watchdog sleeps --------------------------------

    def began(self, who: Watched, threshold: float) -> None:
        self._steps += 1
        self._who, self._limit = who, threshold
        self._since = time.monotonic()
        if self._asleep or not self._running:  # read after the writes above (see _watch)
            self._wake()

    def ended(self) -> None:
        self._since = None

    def _wake(self) -> None:
        with self._cond:
            if self._running or self._closed:
                self._cond.notify_all()
                return
            self._running = True  # a step meanwhile sees it: the new thread will look
        thread = threading.Thread(target=self._watch, name=self._name, daemon=True)
        try:  # outside _cond: a launch holding the stack-size lock may want _cond
            with default_stack():
                thread.start()
        except BaseException as exc:  # no new threads (interpreter shutdown); or a signal's
            if thread.ident is None:  # never started: the next step tries again
                with self._cond:
                    self._running = False
            if not isinstance(exc, RuntimeError):
                raise

    # -- in the watchdog thread ----------------------------------------------------------

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                since, steps, who, limit = self._since, self._steps, self._who, self._limit
                if since is None or steps == self._reported:
                    quiet = steps == self._seen
                    self._seen = steps
                    self._asleep = quiet  # set before a step's began() looks at it
                    woken = self._since is not since or self._steps != steps
                    if not woken:
                        woken = self._cond.wait(_LINGER if quiet else self.threshold)
                    self._asleep = False
                    if quiet and not woken and self._end_if_still(since, steps):
                        return
                    continue
                late = time.monotonic() - since
                if late < limit:
                    self._cond.wait(min(limit - late, self.threshold))
                    continue
                self._reported = self._seen = steps
                stack = thread_stack(self.loop_thread)
                self._cond.release()
                try:
                    if who is not None:
                        who._loop_was_blocked(late, stack)
                except Exception:  # reporting must never end the watchdog
                    pass
                finally:
                    self._cond.acquire()
            self._running = False

    def _end_if_still(self, since: float | None, steps: int) -> bool:
        """No step for ``_LINGER`` seconds: end the thread (True), unless a step began
        meanwhile. ``_running`` is cleared before the look, and began() reads it after its
        writes, so either this look sees that step or that began() starts a new thread."""
        self._running = False
        if self._since is since and self._steps == steps:
            return True
        self._running = True
        return False


class Timed(Coroutine[Any, Any, None]):
    """A service's coroutine, each step timed against *threshold* by the watchdog of the loop
    it runs on (none: not timed)."""

    __slots__ = ("_coro", "_threshold", "_watchdog", "_who")

    def __init__(
        self,
        coro: Coroutine[Any, Any, None],
        watchdog: Watchdog | None,
        who: Watched,
        threshold: float = 0.0,
    ) -> None:
        self._coro, self._watchdog, self._who = coro, watchdog, who
        self._threshold = threshold

    def send(self, value: Any) -> Any:
        watchdog = self._watchdog
        if watchdog is None:
            return self._coro.send(value)
        watchdog.began(self._who, self._threshold)
        try:
            return self._coro.send(value)
        finally:
            watchdog.ended()

    def throw(self, *args: Any) -> Any:
        watchdog = self._watchdog
        if watchdog is None:
            return self._coro.throw(*args)
        watchdog.began(self._who, self._threshold)
        try:
            return self._coro.throw(*args)
        finally:
            watchdog.ended()

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        return self._coro.__await__()

    @property
    def inner(self) -> Coroutine[Any, Any, None]:
        return self._coro


class Place:
    """One loop, its thread, and the async services' tasks on it (counted)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        on_empty: Callable[[], None] | None = None,
    ) -> None:
        self.loop, self.thread = loop, thread
        self._on_empty = on_empty  # the host's loop stops when its last task has ended
        self.closed = False
        self.watchdog: Watchdog | None = None
        self._lock = threading.Lock()
        self._members: set[Any] = set()  # who is in (the async services whose tasks run here)
        self._sweeps = 0  # deadline sweeps posted so far
        #: The latest sweep of each kind (everyone: True, critical only: False): its number
        #: and when its window ends.
        self._swept: dict[bool, tuple[int, float]] = {}
        self._posted: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._drain_due: str | None = None  # "now" or "later": a drain is scheduled

    @property
    def owns_thread(self) -> bool:
        """The loop thread is the host's (it ends with the loop), not the caller's."""
        return self._on_empty is not None

    def enter(self, who: Any, threshold: float | None) -> bool:
        """Count *who*'s task in (watched if *threshold*); False once this place has closed."""
        with self._lock:
            if self.closed:
                return False
            self._members.add(who)
            if threshold is not None:
                if self.watchdog is None:
                    self.watchdog = Watchdog(self.thread, threshold)
                self.watchdog.watch_every(threshold)
            return True

    def leave(self, who: Any) -> None:
        """*who*'s task ended (or never started): the last one out closes the watchdog (and
        the host's loop)."""
        with self._lock:
            self._members.discard(who)
            if self._members:
                return
            watchdog, self.watchdog = self.watchdog, None
            if self._on_empty is not None:
                self.closed = True
        if watchdog is not None:
            watchdog.close()
        if self._on_empty is not None:
            self._on_empty()

    def members(self) -> list[Any]:
        """Who has a task here now."""
        with self._lock:
            return list(self._members)

    @property
    def ticket(self) -> int:
        """Taken when a stop is asked: a deadline sweep numbered from it on covers that stop."""
        return self._sweeps

    def sweep(
        self, ticket: int, everyone: bool, cancel: Callable[[bool], None], window: float
    ) -> float:
        """At a stop's deadline: post ``cancel(everyone)`` to cancel every stopping task
        (only critical ones unless *everyone*) in one loop callback, unless a sweep posted
        since *ticket* covers it already; when the window shared by that sweep ends."""
        with self._lock:
            for kind in (True,) if everyone else (True, False):
                number, until = self._swept.get(kind, (-1, 0.0))
                if number >= ticket:
                    return until
            until = time.monotonic() + window
            self._swept[everyone] = (self._sweeps, until)
            self._sweeps += 1
        with contextlib.suppress(RuntimeError):  # closed: nothing left to cancel
            self.post(cancel, everyone)
        return until

    def abandon(self) -> None:
        """Interpreter exit, and only abandoned daemon-safe tasks are left: stop the host's
        loop anyway (its thread may be non-daemon), as daemon threads are left behind."""
        with self._lock:
            if self._on_empty is None or self.closed:
                return
            self.closed = True
        self._on_empty()

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon, in order; from any thread.

        Calls posted together wake the loop once: a stop of a thousand services is one
        wake-up, not a thousand (each costs a write to the loop's socket and a GIL hand-off).
        ``RuntimeError`` if the loop is closed.
        """
        self._queue(callback, args, now=True)

    def post_batched(self, callback: Callable[..., Any], *args: Any) -> None:
        """``post()`` for a call that comes in a burst (a stop asks every service of a
        wave in a row): it runs once the burst is over, that is at the first ``flush()``
        (the stop waits for them) or at the latest ``_BURST`` seconds later.

        Meanwhile the loop does not compete for the GIL with the thread still asking, so
        the stop of a thousand services costs the sum of both sides, not a ping-pong.
        """
        self._queue(callback, args, now=False)

    def flush(self) -> None:
        """Run what ``post_batched`` queued now (from any thread; the loop may be closed)."""
        with contextlib.suppress(RuntimeError):
            self._schedule(now=True)

    def _queue(self, callback: Callable[..., Any], args: tuple[Any, ...], *, now: bool) -> None:
        with self._lock:
            self._posted.append((callback, args))
        try:
            self._schedule(now=now)
        except RuntimeError:
            with self._lock:
                self._posted.clear()
            raise

    def _schedule(self, *, now: bool) -> None:
        """Have the loop drain what is posted: at once, or after ``_BURST``; nothing if a
        drain as soon is scheduled already."""
        with self._lock:
            if not self._posted or self._drain_due == "now" or (self._drain_due and not now):
                return
            self._drain_due = "now" if now else "later"
        try:
            self.loop.call_soon_threadsafe(self._drain if now else self._drain_later)
        except RuntimeError:  # the loop is closed
            with self._lock:
                self._drain_due = None
            raise

    def _drain_later(self) -> None:
        self.loop.call_later(_BURST, self._drain)

    def _drain(self) -> None:
        with self._lock:
            posted, self._posted, self._drain_due = self._posted, [], None
        for callback, args in posted:
            try:
                callback(*args)
            except Exception as exc:  # as asyncio does for a callback that raises
                self.loop.call_exception_handler(
                    {"message": f"bgservices: {callback!r} failed", "exception": exc}
                )


class LoopHost:
    """A supervisor's own event loop thread for its async services (``sup.start()``)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._current: Place | None = None

    def enter(self, who: Any, *, daemonic: Callable[[], bool], threshold: float | None) -> Place:
        """The place a new task goes on, counted (``leave()`` it when the task ends); a new
        loop thread is a daemon if ``daemonic()`` (asked only then: it may be costly)."""
        with self._lock:
            place = self._current
            if place is not None and place.enter(who, threshold):
                return place
            daemon = daemonic()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=_serve, args=(loop,), name=self._name, daemon=daemon)
            place = self._current = Place(loop, thread, on_empty=_stopper(loop))
            place.enter(who, threshold)
            thread.start()
            return place


def _stopper(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    def stop() -> None:
        with contextlib.suppress(RuntimeError):  # closed already
            loop.call_soon_threadsafe(loop.stop)

    return stop


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """The host's loop thread: run until the last task has ended, then clean up and close."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        leftover = asyncio.all_tasks(loop)  # tasks the services made and left behind
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=1.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


class Loops:
    """A supervisor's places for async services: the loop ``astart()`` was awaited in, or
    else a ``LoopHost`` of its own (non-daemon when any async service is critical)."""

    def __init__(self, owner: Iterable[Any]) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self._host = LoopHost("bgservices:loop")
        self._caller: Place | None = None

    def use_running_loop(self) -> None:
        """From now on, async services go on the running loop (``astart()``)."""
        with self._lock:
            self._caller = Place(asyncio.get_running_loop(), threading.current_thread())

    def forget_running_loop(self) -> None:
        """``astop()`` is done: later starts use the supervisor's own loop."""
        with self._lock:
            self._caller = None

    def enter(self, who: Any, threshold: float | None) -> Place:
        """Where *who*, an async service launched now, runs, counted in: ``Place.leave(who)``
        at its end."""
        with self._lock:
            caller = self._caller
        if caller is not None and caller.enter(who, threshold):
            return caller
        return self._host.enter(who, daemonic=self._all_daemon_safe, threshold=threshold)

    def _all_daemon_safe(self) -> bool:
        return not any(getattr(s, "is_async", False) and not s.daemon for s in self._owner)
