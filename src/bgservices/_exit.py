"""Stop started supervisors when the main thread finishes, and forget them after a fork.

The interpreter joins non-daemon threads before it runs ``atexit`` callbacks, so a critical
service that waits for a stop request would hang the exit. CPython's pre-join hook
``threading._register_atexit`` (what ``concurrent.futures`` uses) runs first; where it is
missing, a daemon watcher thread waits for the main thread to finish instead.

The hook is handed callbacks (``stop_at_exit``, ``reset_after_fork``); it does not import the
supervisor.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref
from typing import Protocol

__all__ = ["interpreter_exiting", "remember", "track", "untrack"]


class _Exiting(Protocol):
    def _stop_at_exit(self) -> None: ...

    def _reset_after_fork(self) -> None: ...


_lock = threading.Lock()  # guards _started and _hook_installed
_started: dict[int, _Exiting] = {}  # id -> supervisor, in start order: stopped newest first
_known: weakref.WeakValueDictionary[int, _Exiting] = weakref.WeakValueDictionary()
_hook_installed = False


def interpreter_exiting() -> bool:
    """True once the interpreter has begun to shut down (threads joined, atexit, finalising)."""
    return bool(getattr(threading, "_SHUTTING_DOWN", False)) or sys.is_finalizing()


def remember(supervisor: _Exiting) -> None:
    """Know *supervisor*, so that a forked child can reset it."""
    _known[id(supervisor)] = supervisor


def track(supervisor: _Exiting) -> None:
    """Stop *supervisor* at exit (newest first) unless it is untracked first."""
    global _hook_installed
    with _lock:
        _started.pop(id(supervisor), None)
        _started[id(supervisor)] = supervisor
        if _hook_installed:
            return
        _hook_installed = True
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        threading.Thread(
            target=_watch_main_thread, name="bgservices:exit-watcher", daemon=True
        ).start()
        return
    # Pre-join hooks run newest first: registering after concurrent.futures' own hook lets
    # a critical teardown at exit still use a ThreadPoolExecutor.
    import concurrent.futures.thread  # noqa: F401

    with contextlib.suppress(RuntimeError):  # raised when the interpreter is already exiting
        register(_at_exit)


def untrack(supervisor: _Exiting) -> None:
    with _lock:
        _started.pop(id(supervisor), None)


def _watch_main_thread() -> None:
    threading.main_thread().join()
    _at_exit()


def _at_exit() -> None:
    """Stop every started supervisor, newest first. Never raises."""
    with _lock:
        supervisors = list(_started.values())
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
    for supervisor in list(_known.values()):
        supervisor._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
