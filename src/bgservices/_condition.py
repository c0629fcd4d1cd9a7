"""``LeanCondition``, a ``threading.Condition`` whose notify to nobody costs nothing, and
``join``: waits that keep the main thread answering signals.

CPython runs signal handlers in the main thread only, once it is awake. The kernel may hand
a process's SIGINT or SIGTERM to any of its threads; then a main thread blocked in a lock
wait does not wake for it, and Ctrl-C would wait for the wait to end (a stop's deadline, or
never). So the main thread waits in slices of ``SIGNAL_SLICE``; other threads wait whole.
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["SIGNAL_SLICE", "LeanCondition", "join"]

SIGNAL_SLICE = 0.5  # seconds: the longest a signal waits for the main thread to notice it


def _slice(timeout: float | None) -> float | None:
    """*timeout*, or at most ``SIGNAL_SLICE`` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return timeout
    return SIGNAL_SLICE if timeout is None else min(timeout, SIGNAL_SLICE)


def join(thread: threading.Thread, timeout: float | None) -> None:
    """``thread.join(timeout)``, in slices in the main thread (``RuntimeError`` for a thread
    not started, as ``Thread.join``)."""
    if threading.current_thread() is not threading.main_thread():
        thread.join(timeout)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        thread.join(_slice(left))
        if not thread.is_alive() or (left is not None and left <= SIGNAL_SLICE):
            return


class LeanCondition(threading.Condition):
    """A ``Condition`` (on a new plain ``Lock`` unless given one) whose notify to nobody
    costs nothing.

    A service notifies on every state move and at its end, and a supervisor on every change
    of a service, mostly with nobody waiting; ``threading.Condition.notify`` checks ownership
    and copies its waiters even then. The waiters go in a list, not a deque: every operation
    CPython's ``Condition`` makes on them (3.11-3.13: append, remove, iteration, ``len``,
    ``clear``) is a list's, and an empty deque is 760 bytes, a tenth of an idle async service.
    """

    def __init__(self, lock: threading.Lock | threading.RLock | None = None) -> None:
        super().__init__(threading.Lock() if lock is None else lock)
        self._waiters: list[Any] = []

    def wait(self, timeout: float | None = None) -> bool:
        """``Condition.wait``; in the main thread at most ``SIGNAL_SLICE`` (a wakeup with
        nothing new, which ``wait_for`` and every caller's loop look past)."""
        return super().wait(_slice(timeout))

    def notify(self, n: int = 1) -> None:
        if self._waiters:  # read under the lock, as every caller holds it
            super().notify(n)

    def notify_all(self) -> None:
        if self._waiters:
            super().notify_all()
