"""Where async services run: a loop thread of the supervisor's own, and its watchdog.

``LoopHost`` starts one event loop in one thread on the first launch of an async service and
lets it end by itself once the last task it hosts has ended (a relaunch starts a new one), so
that nothing is left behind when the services stop. ``Watchdog`` reports a loop that stays
busy in one iteration for longer than a threshold, with the loop thread's stack taken while
it is still stuck: on the host's loop it learns busy and idle from the selector, so it sleeps
while the loop sleeps (no idle CPU); on a caller's loop it posts heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ._stacks import thread_stack

__all__ = ["Hosted", "LoopHost", "Loops", "Place", "Watchdog"]

#: Called by the watchdog (in its thread) with the blocked loop's running task, how long it
#: has been blocked so far, and the loop thread's stack.
Report = Callable[["asyncio.Task[Any] | None", float, str], None]


class Watchdog:
    """Reports, once per stuck iteration, a loop busy for longer than ``threshold``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        threshold: float,
        report: Report,
        *,
        heartbeat: bool,
    ) -> None:
        self.loop, self.loop_thread, self.threshold = loop, thread, threshold
        self._report = report
        self._heartbeat = heartbeat
        self._cond = threading.Condition(threading.Lock())
        self.busy_since: float | None = None  # None: idle in select (or the last beat answered)
        self._iteration = 0
        self._reported = -1
        self._asleep = False
        self._closed = False
        owner = (
            thread.name if thread.name.startswith("bgservices:") else f"bgservices:{thread.name}"
        )
        self._thread = threading.Thread(target=self._watch, name=f"{owner}:watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- told by the loop thread ---------------------------------------------------------

    def idle(self) -> None:
        """The loop is about to wait in select(): whatever runs next is a new iteration."""
        self.busy_since = None

    def busy(self) -> None:
        """select() returned: callbacks run from now on. Cheap unless the watchdog sleeps."""
        self._iteration += 1
        self.busy_since = time.monotonic()
        if self._asleep:
            with self._cond:
                self._cond.notify_all()

    def _beat(self, iteration: int) -> None:
        if self._iteration == iteration:
            self.busy_since = None

    # -- in the watchdog thread ----------------------------------------------------------

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                if self._heartbeat:
                    if self.loop.is_closed():
                        return  # the caller's loop is gone (asyncio.run() ended)
                    if not self.loop.is_running():
                        self.busy_since = None  # not running is not blocked
                        self._cond.wait(self.threshold / 2)
                        continue
                    if self.busy_since is None:
                        self._iteration += 1
                        self.busy_since = time.monotonic()
                        try:
                            self.loop.call_soon_threadsafe(self._beat, self._iteration)
                        except RuntimeError:  # closed meanwhile
                            return
                since, iteration = self.busy_since, self._iteration
                if since is None or iteration == self._reported:
                    self._asleep = True  # set before the loop's next busy() looks at it
                    if self.busy_since is since and self._iteration == iteration:
                        self._cond.wait(self.threshold / 2 if self._heartbeat else None)
                    self._asleep = False
                    continue
                late = time.monotonic() - since
                if late < self.threshold:
                    self._cond.wait(self.threshold - late)
                    continue
                self._reported = iteration
                stack = thread_stack(self.loop_thread)
                task = _running_task(self.loop)
                self._cond.release()
                try:
                    self._report(task, late, stack)
                except Exception:  # reporting must never kill the watchdog
                    pass
                finally:
                    self._cond.acquire()


def _running_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task(loop)
    except RuntimeError:
        return None


def _selector_for(watchdog_ref: list[Watchdog]) -> selectors.BaseSelector:
    """The default selector, telling the watchdog when the loop sleeps and wakes."""

    class _Selector(selectors.DefaultSelector):
        def select(self, timeout: float | None = None) -> Any:
            watchdog = watchdog_ref[0] if watchdog_ref else None
            if watchdog is not None:
                watchdog.idle()
            try:
                return super().select(timeout)
            finally:
                if watchdog is not None:
                    watchdog.busy()

    return _Selector()


class Hosted:
    """One loop in one thread, and how many tasks it hosts."""

    def __init__(self, name: str, daemon: bool, threshold: float, report: Report) -> None:
        watchdog_ref: list[Watchdog] = []
        self.loop = asyncio.SelectorEventLoop(_selector_for(watchdog_ref))
        self.thread = threading.Thread(target=self._serve, name=name, daemon=daemon)
        self.watchdog = Watchdog(self.loop, self.thread, threshold, report, heartbeat=False)
        watchdog_ref.append(self.watchdog)
        self.tasks = 0
        self.closing = False

    def start(self) -> None:
        self.watchdog.start()
        self.thread.start()

    def _serve(self) -> None:
        loop = self.loop
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
            self.watchdog.close()


class LoopHost:
    """A supervisor's own event loop thread for its async services (``sup.start()``)."""

    def __init__(self, name: str, report: Report) -> None:
        self._name = name
        self._report = report
        self._lock = threading.Lock()
        self._current: Hosted | None = None

    def acquire(self, *, daemon: bool, threshold: float) -> Hosted:
        """The loop a new task goes on (counted: ``release`` it when the task ends)."""
        with self._lock:
            hosted = self._current
            if hosted is None or hosted.closing:
                hosted = self._current = Hosted(self._name, daemon, threshold, self._report)
                hosted.start()
            hosted.watchdog.threshold = min(hosted.watchdog.threshold, threshold)
            hosted.tasks += 1
            return hosted

    def release(self, hosted: Hosted) -> None:
        """A task ended (or never started): the last one out stops the loop."""
        with self._lock:
            hosted.tasks -= 1
            if hosted.tasks > 0:
                return
            hosted.closing = True
        with contextlib.suppress(RuntimeError):  # closed already
            hosted.loop.call_soon_threadsafe(hosted.loop.stop)

    @property
    def thread(self) -> threading.Thread | None:
        hosted = self._current
        return None if hosted is None else hosted.thread


class Place:
    """Where one launch of an async service runs: a loop, its thread, and how to let go."""

    __slots__ = ("cancel_until", "loop", "release", "thread")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.loop, self.thread, self.release = loop, thread, release
        #: Cancellations at a stop deadline share one short wait: see AsyncService._wait_exited.
        self.cancel_until = 0.0


class Loops:
    """A supervisor's places for async services: the loop ``astart()`` was awaited in, or
    else a ``LoopHost`` of its own (non-daemon when any async service is critical)."""

    def __init__(self, owner: Iterable[Any], report: Report) -> None:
        self._owner = owner
        self._report = report
        self._lock = threading.Lock()
        self._host = LoopHost("bgservices:loop", report)
        self._caller: Place | None = None
        self._caller_watchdog: Watchdog | None = None

    def use_running_loop(self) -> None:
        """From now on, async services go on the running loop (``astart()``)."""
        with self._lock:
            self._caller = Place(asyncio.get_running_loop(), threading.current_thread())

    def forget_running_loop(self) -> None:
        """``astop()`` is done: close the caller loop's watchdog; later starts use a host."""
        with self._lock:
            watchdog, self._caller_watchdog, self._caller = self._caller_watchdog, None, None
        if watchdog is not None:
            watchdog.close()
            watchdog.join(1.0)

    def place(self, threshold: float) -> Place:
        """Where an async service launched now runs."""
        with self._lock:
            caller = self._caller
            if caller is not None:
                watchdog = self._caller_watchdog
                if watchdog is None:
                    watchdog = self._caller_watchdog = Watchdog(
                        caller.loop, caller.thread, threshold, self._report, heartbeat=True
                    )
                    watchdog.start()
                watchdog.threshold = min(watchdog.threshold, threshold)
                return caller
        critical = any(getattr(s, "is_async", False) and not s.daemon for s in self._owner)
        hosted = self._host.acquire(daemon=not critical, threshold=threshold)
        return Place(hosted.loop, hosted.thread, lambda: self._host.release(hosted))
