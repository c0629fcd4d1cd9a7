"""Listeners called from a thread of their own, for a caller that must not wait on them
past a deadline: the thread doing a stop, and the exit hook."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Courier"]

_T = TypeVar("_T")
_IDLE = 1.0  # seconds with nothing to deliver before the thread ends; a send starts another


class Courier(Generic[_T]):
    """Delivers items in order, each by *deliver*, in a daemon thread
    (``bgservices:listeners``). A sender waits for its item's delivery until its deadline,
    no longer, and not at all while an earlier delivery is late: a stuck delivery holds the
    items behind it, never a sender (past one deadline), nor the interpreter's exit."""

    def __init__(self, deliver: Callable[[_T], None]) -> None:
        self._deliver = deliver
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[_T] = collections.deque()
        self._sent = self._done = 0
        self._thread: threading.Thread | None = None
        self._finishing = False
        self._late = False  # a sender gave up waiting; none waits until the queue is empty

    def carrying(self) -> bool:
        """Whether the calling thread is the courier's: a delivery is running in it."""
        return self._thread is threading.current_thread()

    def send(self, item: _T, until: float) -> None:
        """Deliver *item* after those sent before it; wait for that until *until*
        (monotonic), no longer, unless an earlier delivery is late."""
        with self._cond:
            self._queue.append(item)
            self._finishing = False
            self._sent += 1
            ticket = self._sent
            thread = None
            if self._thread is None:
                thread = self._thread = threading.Thread(
                    target=self._run, name="bgservices:listeners", daemon=True
                )
            else:
                self._cond.notify_all()
        if thread is not None and not self._started(thread):
            return
        with self._cond:
            if self._late:
                return
            if not self._cond.wait_for(
                lambda: self._done >= ticket, max(0.0, until - time.monotonic())
            ):
                self._late = True

    def _started(self, thread: threading.Thread) -> bool:
        """Start *thread*; if none can be had (out of threads or memory, or an interpreter
        that refuses new threads at exit), deliver what waits here, as without a courier."""
        try:
            thread.start()
        except RuntimeError:
            with self._cond:
                stranded = list(self._queue)
                self._queue.clear()
                self._done += len(stranded)
                self._thread = None
            for item in stranded:
                self._deliver(item)
            return False
        return True

    def finish(self) -> None:
        """Let the thread end once it has delivered what it holds, without idling first."""
        with self._cond:
            self._finishing = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._finishing, _IDLE)
                if not self._queue:
                    self._thread, self._finishing = None, False
                    return
                item = self._queue.popleft()
            try:
                self._deliver(item)
            finally:
                with self._cond:
                    self._done += 1
                    if self._done == self._sent:
                        self._late = False
                    self._cond.notify_all()
