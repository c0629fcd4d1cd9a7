"""Start a thread with a given stack size, within CPython's one process-wide setting.

``threading`` has no per-thread stack size, only ``threading.stack_size()``, which applies to
every thread started after it. So the size is set, the thread started, and the previous size
put back, under one module-level lock: two supervisors never mix their sizes. A thread started
elsewhere (not through bgservices) in that short window gets the size too: that is the caveat;
bgservices' own helper threads start under the same lock (``default_stack``), so never in it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

__all__ = ["MAX_STACK_SIZE", "MIN_STACK_SIZE", "default_stack", "stack_size"]

#: threading's own minimum (``stack_size()`` refuses less), and a generous maximum.
MIN_STACK_SIZE = 32 * 1024
MAX_STACK_SIZE = 256 * 1024 * 1024

_LOCK = threading.Lock()  # guards the process-wide threading.stack_size() while a thread starts


_UNCHANGED = contextlib.nullcontext()


def stack_size(size: int | None) -> contextlib.AbstractContextManager[None]:
    """Threads started inside get *size* bytes of stack (0: the platform's default); None
    changes nothing and takes no lock (at the cost of a ``nullcontext``: every launch asks)."""
    return _UNCHANGED if size is None else _sized(size)


@contextlib.contextmanager
def _sized(size: int) -> Iterator[None]:
    with _LOCK:
        previous = threading.stack_size(size)
        try:
            yield
        finally:
            threading.stack_size(previous)


@contextlib.contextmanager
def default_stack() -> Iterator[None]:
    """Threads started inside get the application's stack size: no launch's ``stack_size()``
    window is open meanwhile. For bgservices' own helper threads (the watchdogs), which a
    service thread or the event loop may start while a supervisor launches another service."""
    with _LOCK:
        yield


def _after_fork_in_child() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # a thread of the parent may have held it: it is gone here


os.register_at_fork(after_in_child=_after_fork_in_child)


def size_problem(size: int | None) -> str | None:
    """Why *size* is not a stack size ``threading`` accepts, or None."""
    if size is None or size == 0 or MIN_STACK_SIZE <= size <= MAX_STACK_SIZE:
        return None
    return f"must be 0 (the platform default) or between {MIN_STACK_SIZE} and {MAX_STACK_SIZE}"
