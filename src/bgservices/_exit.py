"""Stop started supervisors when the main thread finishes, and forget them after a fork.

The interpreter joins non-daemon threads before it runs ``atexit`` callbacks, so a critical
service that waits for a stop request would hang the exit. CPython's pre-join hook
``threading._register_atexit`` (what ``concurrent.futures`` uses) runs first; where it is
missing, a daemon watcher thread waits for the main thread to finish instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .supervisor import Supervisor

__all__ = ["remember", "track", "untrack"]

_lock = threading.Lock()
_started: set[Supervisor] = set()  # strong references: a started supervisor must be stopped
_known: weakref.WeakSet[Supervisor] = weakref.WeakSet()
_hook_installed = False


def remember(supervisor: Supervisor) -> None:
    """Know *supervisor*, so that a forked child can reset it."""
    _known.add(supervisor)


def track(supervisor: Supervisor) -> None:
    """Stop *supervisor* at exit unless it is untracked first."""
    global _hook_installed
    with _lock:
        _started.add(supervisor)
        if _hook_installed:
            return
        _hook_installed = True
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        threading.Thread(
            target=_watch_main_thread, name="bgservices:exit-watcher", daemon=True
        ).start()
        return
    with contextlib.suppress(RuntimeError):  # raised when the interpreter is already exiting
        register(_at_exit)


def untrack(supervisor: Supervisor) -> None:
    with _lock:
        _started.discard(supervisor)


def _watch_main_thread() -> None:
    threading.main_thread().join()
    _at_exit()


def _at_exit() -> None:
    """Stop every started supervisor, newest first. Never raises."""
    with _lock:
        supervisors = list(_started)
    for supervisor in reversed(supervisors):
        try:
            supervisor._stop_at_exit()
        except BaseException as exc:  # an exit hook must never raise
            with contextlib.suppress(BaseException):
                print(
                    f"bgservices: stopping {supervisor!r} at exit failed: {exc!r}", file=sys.stderr
                )


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _started.clear()
    for supervisor in list(_known):
        supervisor._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
