"""``LeanCondition``: a ``threading.Condition`` whose notify to nobody costs nothing."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["LeanCondition"]


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

    def notify(self, n: int = 1) -> None:
        if self._waiters:  # read under the lock, as every caller holds it
            super().notify(n)

    def notify_all(self) -> None:
        if self._waiters:
            super().notify_all()
