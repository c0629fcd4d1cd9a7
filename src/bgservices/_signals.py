"""Opt-in SIGINT/SIGTERM handling: a handler only records the signal and wakes a thread.

A Python signal handler runs in the main thread between two bytecodes, wherever that thread
was: inside a logging call holding a handler's lock, inside a ``Thread.join``. A handler that
logs or takes a lock can deadlock against it, and one that raises inside a join corrupts the
join on CPython 3.11/3.12. So the handler writes the signal number to a pipe and returns; a
watcher thread reads the pipe and does the work (logging, waking ``run()``, a forced exit).

The handler raises ``KeyboardInterrupt`` / ``SystemExit(128+signum)`` in the main thread only
where that is safe and wanted: outside ``run()`` and not while the main thread waits inside a
bgservices stop. A signal arriving during such a wait is deferred and raised when the wait
ends, so a critical teardown is never cut short by the first signal. A second signal always
exits at once, from the watcher thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from ._stacks import all_stacks

__all__ = ["SignalHandlers", "deferring", "force_exit", "from_signal"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_CLOSE = b"\0"

# Written only by the main thread (the signal handler runs there too), so no lock is needed.
_defer_depth = 0
_deferred: int | None = None


class SignalHandlers:
    """Installs handlers in the main thread and puts the previous ones back on ``restore()``.

    *on_first* is called in the watcher thread with the first signal's number; *raises*
    tells the handler whether the first signal should also unwind the main thread.
    """

    def __init__(self, on_first: Callable[[int], None], raises: Callable[[], bool]) -> None:
        self._on_first = on_first
        self._raises = raises
        self._previous: dict[int, Any] = {}
        self._pipe: tuple[int, int] | None = None
        self.received: list[int] = []

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("signal handlers can only be installed from the main thread")
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # the handler must never block on a full pipe
        self._pipe = (read_fd, write_fd)
        threading.Thread(
            target=self._watch, args=(read_fd, write_fd), name="bgservices:signals", daemon=True
        ).start()
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            with contextlib.suppress(OSError):
                os.write(pipe[1], _CLOSE)  # the watcher closes both ends

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        global _deferred
        first = not self.received
        self.received.append(signum)
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.write(self._pipe[1], bytes([signum]))
        if not first or not self._raises():
            return
        if _defer_depth:
            _deferred = signum  # raised when the main thread's bgservices wait ends
            return
        raise _exception_for(signum)

    def _watch(self, read_fd: int, write_fd: int) -> None:
        seen = 0
        try:
            while True:
                data = os.read(read_fd, 64)
                for signum in data:
                    if signum == _CLOSE[0]:
                        return
                    seen += 1
                    if seen == 1:
                        self._on_first(signum)
                    else:
                        force_exit(signum)
        finally:
            for fd in (read_fd, write_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)


def _exception_for(signum: int) -> BaseException:
    exc: BaseException = (
        KeyboardInterrupt() if signum == signal.SIGINT else SystemExit(128 + signum)
    )
    exc.bgservices_signal = signum  # type: ignore[attr-defined]
    return exc


def from_signal(exc: BaseException) -> bool:
    """True if *exc* was raised by a bgservices signal handler (the operator's, not code's)."""
    return hasattr(exc, "bgservices_signal")


@contextlib.contextmanager
def deferring() -> Iterator[None]:
    """While the main thread waits in here, a first signal is held, then raised at the end."""
    global _defer_depth, _deferred
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _defer_depth += 1
    try:
        yield
    finally:
        _defer_depth -= 1
        if not _defer_depth and _deferred is not None:
            signum, _deferred = _deferred, None
            raise _exception_for(signum)


def force_exit(signum: int) -> None:
    """A second signal: show where every thread is, then exit at once with 128+signum."""
    try:
        name = signal.Signals(signum).name
        sys.stderr.write(f"bgservices: second {name}, exiting now. Thread stacks:\n{all_stacks()}")
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os._exit(128 + signum)
